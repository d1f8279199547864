"""The applies in flight: at most one per unit, each unit on its own.

A unit never waits for another unit's check or reload. The blocking part of an apply
(disk, commands) runs in a daemon thread, so a stopping daemon can exit after a short
grace period even if a command ignored its SIGKILL or a socket read is still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from confpy.commands import kill_running

T = TypeVar("T")
log = logging.getLogger("confpy")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread of its own (interpreter exit does not wait for it)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not done.done():
            (done.set_result if ok else done.set_exception)(value)

    def work() -> None:
        try:
            result: Any = fn(*args)
            ok = True
        except BaseException as exc:  # handed to the awaiting task
            result, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, ok, result)

    threading.Thread(target=work, name=f"confpy-{getattr(fn, '__name__', 'apply')}", daemon=True).start()
    return await done


class Workers:
    def __init__(self, done: Callable[[], None]) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._done = done  # called when an apply ends: pending work may be due now

    def __contains__(self, unit: object) -> bool:
        return unit in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, unit: str, work: Coroutine[Any, Any, None]) -> None:
        assert unit not in self._tasks, f"unit {unit} is already being applied"
        task = asyncio.create_task(work, name=f"apply {unit}")
        self._tasks[unit] = task
        task.add_done_callback(lambda t: self._finished(unit, t))

    def _finished(self, unit: str, task: asyncio.Task[None]) -> None:
        self._tasks.pop(unit, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("unit %s: apply crashed", unit, exc_info=task.exception())
        self._done()

    async def wait(self) -> None:
        """Until every apply in flight has ended."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def stop(self, grace: float) -> None:
        """Kill the running commands' process groups and give the applies ``grace``
        seconds to end; whatever is still running then is abandoned (files are
        replaced by rename, so no reader ever sees a torn one)."""
        killed = kill_running()
        if killed:
            log.info("stopping: killed %d running command(s)", killed)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                log.warning("stopping: abandoning %s", task.get_name())
                task.cancel()
