from pathlib import Path

from confpy.cache import Cache
from confpy.resource import TemplateResource
from confpy.stores.base import Change, Changes, Resync, Snapshot


def resource(prefix: str, *keys: str) -> TemplateResource:
    return TemplateResource("r", Path("r.toml"), "t.j2", Path("/x"), prefix, keys)


def test_kept_views_follow_puts_and_deletes_without_a_rebuild() -> None:
    cache = Cache(Snapshot(1, {"/app/peers/a": "1", "/app/peers/b": "2", "/other/x": "3"}))
    r = resource("/app", "/app/peers")
    view = cache.view(r)
    assert cache.view(r) is view
    changed = cache.apply(
        Changes(2, (Change("/app/peers/c", "9"), Change("/app/peers/a", None), Change("/other/x", "4")))
    )
    assert changed == {"/app/peers/c", "/app/peers/a", "/other/x"}
    assert cache.view(r) is view, "updated in place"
    assert [p.key for p in view.gets("/peers/*")] == ["/peers/b", "/peers/c"]
    assert view.getv("/peers/c").key == "/app/peers/c"
    assert cache.revision == 2


def test_an_unchanged_put_is_not_a_change() -> None:
    cache = Cache(Snapshot(1, {"/a": "1"}))
    assert cache.apply(Changes(2, (Change("/a", "1"),))) == set()


def test_resync_reports_the_difference_and_keeps_unchanged_values() -> None:
    cache = Cache(Snapshot(1, {"/a": "1", "/b": "2", "/c": "3"}))
    kept = cache.values["/a"]
    view = cache.view(resource("", "/"))
    changed = cache.apply(Resync(Snapshot(9, {"/a": "1", "/b": "20", "/d": "4"})))
    assert changed == {"/b", "/c", "/d"}
    assert cache.values["/a"] is kept, "what json() parsed of it stays cached"
    assert cache.view(resource("", "/")) is not view, "views are rebuilt after a resync"
    assert cache.view(resource("", "/")).getv("/b") == "20"
