"""Know the moment a destination file is replaced: Linux inotify through ctypes.

confpy replaces a file by renaming a staged copy over it, which the directory reports
as IN_MOVED_TO (a first write may also be a plain create + close). The event is read
on the asyncio loop; the file is then read once to see whether it holds what we wait
for. Where inotify is unavailable, the same API polls ``stat`` every millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")

_libc: ctypes.CDLL | None = None
with contextlib.suppress(OSError, AttributeError):
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _libc.inotify_init1.argtypes = [ctypes.c_int]
    _libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class FileWatch:
    """Watch files (any number, in any directories) for replacement.

    ``await wait(path, predicate, timeout)`` returns the ``perf_counter`` time at which
    a replacement of ``path`` satisfying ``predicate(content)`` was seen.
    ``events`` records (time, path) of every replacement seen, for burst counting.
    """

    def __init__(self, files: list[Path]) -> None:
        self.files = [Path(f) for f in files]
        self.events: list[tuple[float, Path]] = []
        self._fd = -1
        self._wd: dict[int, Path] = {}  # watch descriptor -> directory
        self._changed: asyncio.Event | None = None
        self._dirty: set[Path] = set()
        self._last: dict[Path, float] = {}  # path -> time of its latest event
        self._stat: dict[Path, tuple[int, int, int]] = {}
        if _libc is not None:
            fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                for d in sorted({f.parent for f in self.files}):
                    d.mkdir(parents=True, exist_ok=True)
                    wd = _libc.inotify_add_watch(
                        fd, str(d).encode(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE
                    )
                    if wd < 0:
                        raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
                    self._wd[wd] = d

    @property
    def uses_inotify(self) -> bool:
        return self._fd >= 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        if self.uses_inotify:
            loop.add_reader(self._fd, self._read)
        else:
            self._poller = loop.create_task(self._poll())

    def close(self) -> None:
        if self.uses_inotify:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        elif hasattr(self, "_poller"):
            self._poller.cancel()

    def _read(self) -> None:
        now = time.perf_counter()
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        i = 0
        wanted = set(self.files)
        while i + _EVENT.size <= len(data):
            wd, _mask, _cookie, length = _EVENT.unpack_from(data, i)
            name = data[i + _EVENT.size : i + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
            i += _EVENT.size + length
            path = self._wd.get(wd, Path("?")) / name
            if path in wanted:
                self.events.append((now, path))
                self._last[path] = now
                self._dirty.add(path)
        if self._dirty and self._changed is not None:
            self._changed.set()

    async def _poll(self) -> None:
        while True:
            now = time.perf_counter()
            for f in self.files:
                try:
                    st = f.stat()
                    sig = (st.st_ino, st.st_mtime_ns, st.st_size)
                except OSError:
                    sig = (0, 0, 0)
                if self._stat.get(f) != sig:
                    self._stat[f] = sig
                    self.events.append((now, f))
                    self._last[f] = now
                    self._dirty.add(f)
            if self._dirty and self._changed is not None:
                self._changed.set()
            await asyncio.sleep(0.001)

    async def wait(self, path: Path, predicate: Callable[[str], bool], timeout: float) -> float:
        """Time at which ``path`` held content satisfying ``predicate`` (checked now too)."""
        try:
            return (await self.wait_all([path], predicate, timeout))[path]
        except TimeoutError:
            raise TimeoutError(f"{path} did not reach the expected content within {timeout:g} s") from None

    async def wait_all(
        self, paths: list[Path], predicate: Callable[[str], bool], timeout: float, *, partial: bool = False
    ) -> dict[Path, float]:
        """For each of ``paths``, the time it first held content satisfying ``predicate``.
        After ``timeout``: TimeoutError, or with ``partial`` those that did (the others missing)."""
        assert self._changed is not None, "start() first"
        done: dict[Path, float] = {}
        pending = set(paths)
        deadline = time.perf_counter() + timeout
        for p in list(pending):
            if _holds(p, predicate):
                done[p] = time.perf_counter()
                pending.discard(p)
        while pending:
            left = deadline - time.perf_counter()
            if left <= 0:
                if partial:
                    return done
                raise TimeoutError(f"{len(pending)} of {len(paths)} files not updated within {timeout:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
            self._changed.clear()
            hits = pending & self._dirty
            self._dirty -= hits
            for p in hits:
                if _holds(p, predicate):
                    done[p] = self._last.get(p, time.perf_counter())
                    pending.discard(p)
        return done


def holding(*needles: str) -> Callable[[str], bool]:
    """A predicate: the text contains every one of ``needles``."""
    return lambda text: all(n in text for n in needles)


def _holds(path: Path, predicate: Callable[[str], bool]) -> bool:
    try:
        return predicate(path.read_text(errors="replace"))
    except OSError:
        return False
