import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from confpy.keys import collapse
from confpy.stores.base import Changes, Store
from confpy.stores.env import EnvStore
from confpy.stores.file import DataFileError, FileStore, flatten
from confpy.stores.memory import MemoryStore


def test_flatten_nested_maps_lists_and_scalars() -> None:
    data = {"app": {"db": {"host": "h", "port": 5432, "tls": True, "none": None}, "peers": ["a", "b"]}}
    assert flatten(data) == {
        "/app/db/host": "h",
        "/app/db/port": "5432",
        "/app/db/tls": "true",
        "/app/db/none": "",
        "/app/peers/0": "a",
        "/app/peers/1": "b",
    }


def test_flat_keys_are_taken_as_written_and_json_text_stays_text() -> None:
    data = {"/calico/bgp/v1/global/node_mesh": '{"enabled":true}', "/a/b": {"c": "d"}}
    assert flatten(data) == {"/calico/bgp/v1/global/node_mesh": '{"enabled":true}', "/a/b/c": "d"}


def test_file_store_reads_a_directory_and_filters_by_prefix(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("app:\n  x: 1\nother: 2\n")
    (tmp_path / "b.json").write_text('{"app": {"y": "2"}}')
    (tmp_path / "ignored.txt").write_text("nope")
    snap = asyncio.run(FileStore([tmp_path]).snapshot(["/app"]))
    assert snap.values == {"/app/x": "1", "/app/y": "2"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "a: [1, 2\nb: 3\n", r"bad.yaml:\d+:\d+: invalid YAML"),
        ("bad.json", '{"a": 1,\n}', r"bad.json:2:1: invalid JSON"),
        # Found by the datafile_yaml / datafile_json fuzz harnesses (tests/fuzz/corpus/datafile_*/regress-*):
        # each went through as a ValueError, a RecursionError, or ran for minutes.
        ("big.json", "1" * 5000, r"big.json: invalid JSON: Exceeds the limit \(4300 digits\)"),
        ("big.yaml", "a: " + "1" * 5000, r"big.yaml: invalid YAML: Exceeds the limit \(4300 digits\)"),
        ("deep.json", "[" * 3000, r"deep.json: invalid JSON: nested too deeply"),
        ("deep.yaml", "[" * 1000, r"deep.yaml: invalid YAML: nested too deeply"),
        ("deep2.json", "[" * 200 + "]" * 200, r"deep2.json: nested deeper than 100 levels, at /0/0/0"),
        ("loop.yaml", "a: &x [*x]\n", r"loop.yaml: nested deeper than 100 levels, at /a/0/0/0"),
        (
            "laughs.yaml",
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
            ),
            r"laughs.yaml: more than 200000 values \(YAML aliases",
        ),
    ],
)
def test_bad_data_files_name_file_and_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(DataFileError, match=message):
        asyncio.run(FileStore([tmp_path / name]).snapshot(["/"]))


def test_file_store_revision_moves_only_when_content_changes(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("a: 1\n")
    store = FileStore([f])
    first = asyncio.run(store.snapshot(["/"])).revision
    f.write_text("a: 1\n")  # same content, new mtime
    assert asyncio.run(store.snapshot(["/"])).revision == first
    f.write_text("a: 2\n")
    assert asyncio.run(store.snapshot(["/"])).revision == first + 1


def test_env_store_uses_confds_mapping() -> None:
    store = EnvStore({"DATABASE_HOST": "db", "DATABASE_PORT": "5432", "OTHER": "x"})
    snap = asyncio.run(store.snapshot(["/database"]))
    assert snap.values == {"/database/host": "db", "/database/port": "5432"}


def test_memory_store_replays_from_a_revision() -> None:
    async def scenario() -> list[Changes]:
        store = MemoryStore({"/a/x": "1"})
        start = (await store.snapshot(["/a"])).revision
        await store.put("/a/y", "2")
        await store.put("/b/z", "3")  # outside the prefix
        await store.commit({"/a/x": "9"}, deletes=["/a/y"])
        got: list[Changes] = []
        async for batch in store.watch(["/a"], start):
            assert isinstance(batch, Changes)
            got.append(batch)
            if len(got) == 2:
                break
        return got

    first, second = asyncio.run(scenario())
    assert [(c.key, c.value) for c in first.changes] == [("/a/y", "2")]
    assert sorted((c.key, c.value) for c in second.changes) == [("/a/x", "9"), ("/a/y", None)]


SIBLING_DATA = {"/a": "1", "/a/x": "2", "/a-b/y": "3", "/av6/z": "4", "/a10": "5", "/b": "6"}


def _file_store(tmp_path: Path) -> FileStore:
    path = tmp_path / "siblings.json"
    path.write_text(json.dumps(SIBLING_DATA))
    return FileStore([path])


def _env_store(tmp_path: Path) -> EnvStore:
    return EnvStore({k.strip("/").replace("/", "_").upper(): v for k, v in SIBLING_DATA.items()})


@pytest.mark.parametrize("make", [_file_store, lambda _: MemoryStore(SIBLING_DATA), _env_store])
@pytest.mark.parametrize(
    ("prefixes", "expected"),
    [
        (["/a"], ["/a", "/a/x"]),
        (["/a/"], ["/a", "/a/x"]),
        (["/av6"], ["/av6/z"]),
        (["/a-b"], ["/a-b/y"]),
        (["/a", "/av6"], ["/a", "/a/x", "/av6/z"]),
    ],
)
def test_every_store_reads_exactly_what_its_prefixes_cover(
    tmp_path: Path, make: Callable[[Path], Store], prefixes: list[str], expected: list[str]
) -> None:
    snap = asyncio.run(make(tmp_path).snapshot(collapse(prefixes)))
    assert sorted(snap.values) == expected


def test_memory_store_watch_keeps_siblings_apart() -> None:
    async def scenario() -> list[str]:
        store = MemoryStore()
        await store.put("/av6/z", "sibling")
        await store.put("/a/x", "mine")
        async for batch in store.watch(["/a"], 1):
            assert isinstance(batch, Changes)
            return [c.key for c in batch.changes]
        return []

    assert asyncio.run(scenario()) == ["/a/x"]
