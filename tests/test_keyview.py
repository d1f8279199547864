from confpy.keyview import KeyView

DATA = {
    "/app/peers/b": "2",
    "/app/peers/a": "3",
    "/app/peers/c/deep": "1",
    "/app/db/host": "h",
    "/app/db/port": "",
    "/app/name": "n",
}


def view() -> KeyView:
    return KeyView("/app", DATA)


def test_keys_are_relative_to_the_prefix_and_values_remember_the_full_key() -> None:
    v = view()
    assert v.getv("/db/host") == "h"
    assert v.getv("/db/host").key == "/app/db/host"
    assert v.exists("/db/port")  # present even when empty
    assert not v.exists("/db/user")


def test_gets_star_does_not_cross_slash_and_is_sorted_by_key() -> None:
    assert [p.key for p in view().gets("/peers/*")] == ["/peers/a", "/peers/b"]
    assert [p.Key for p in view().gets("/*/*")] == ["/db/host", "/db/port", "/peers/a", "/peers/b"]


def test_getvs_is_sorted_by_value_as_confd_does() -> None:
    assert view().getvs("/peers/*") == ["2", "3"]


def test_ls_lists_unique_children_and_lsdir_only_those_with_children() -> None:
    v = view()
    assert v.ls("/peers") == ["a", "b", "c"]
    assert v.ls("/peers/") == ["a", "b", "c"]
    assert v.lsdir("/peers") == ["c"]
    assert v.ls("/") == ["db", "name", "peers"]
    assert v.ls("/nothing") == []


def test_ls_does_not_mix_sibling_names_sharing_a_prefix() -> None:
    v = KeyView("", {"/host/node1/a": "1", "/host/node10/b": "2"})
    assert v.ls("/host/node1") == ["a"]


def test_full_key_lookups_for_typed_builders() -> None:
    v = view()
    assert v.lookup_full("/app/name") == "n"
    assert v.lookup_full("/other/name") is None
    assert [k for k, _ in v.items_under_full("/app/db")] == ["/app/db/host", "/app/db/port"]
