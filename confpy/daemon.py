"""The daemon: -watch and -interval keep every unit applied as the store changes.

Data flows one way: store -> cache -> changed keys -> affected units (the pending
batch, :mod:`confpy.batch`) -> quiet window -> render/stage/check/replace/reload
(:mod:`confpy.apply`) -> logs, metrics, the retry book (:mod:`confpy.retries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from confpy.apply import Applier, Cause, StepKind, UnitResult
from confpy.backoff import Backoff
from confpy.batch import Keys, PendingBatch
from confpy.cache import Cache
from confpy.commands import allow_commands
from confpy.engine import Engine, Loaded
from confpy.errors import EXIT_OK, ConfigError
from confpy.health import Health
from confpy.logs import LEVELS
from confpy.notify import Notifier, keep_informed
from confpy.resource import Unit
from confpy.retries import RetryBook
from confpy.settings import DEFAULT_POLL_INTERVAL, Settings
from confpy.stores.base import Resync, Store, StoreError
from confpy.workers import Workers, in_thread

if TYPE_CHECKING:
    from confpy.status import Board

log = logging.getLogger("confpy")

#: Retrying an unreachable store: 0.5 s doubling to 30 s.
STORE_RETRY_FIRST, STORE_RETRY_CAP = 0.5, 30.0
#: How long a stopping daemon waits for the applies in flight, their commands killed.
STOP_GRACE = 1.5


@dataclass
class Daemon:
    engine: Engine
    cache: Cache | None = None
    batch: PendingBatch = field(default_factory=PendingBatch)
    retries: RetryBook = field(default_factory=RetryBook)
    on_disk: dict[Path, tuple[int, int, int]] = field(default_factory=dict)  # for the reconcile
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    follower: asyncio.Task[None] | None = None
    workers: Workers = field(init=False)
    next_reconcile: float = 0.0
    stopping: bool = False
    hup: bool = False
    board: Board | None = None
    notifier: Notifier = field(default_factory=Notifier)

    def __post_init__(self) -> None:
        self.workers = Workers(self._apply_ended)

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def watching(self) -> bool:
        return self.settings.watch

    # --- life cycle ------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_config_reload)
        cleanups: list[Callable[[], None]] = []
        if self.settings.metrics_addr:
            from confpy.status import Board, serve  # prometheus-client: only when asked for

            self.board = Board(self.store)
            self.board.expect_units([u.name for u in self.engine.loaded.units])
            cleanups.append(serve(self.board, self.settings.metrics_addr))
        if self.settings.watch_config:
            from confpy.configwatch import watch_config  # watchdog: only when asked for

            # watchdog calls from its own thread: hand the request to the loop.
            def changed() -> None:
                loop.call_soon_threadsafe(self.request_config_reload)

            cleanups.append(watch_config(self.settings.confdir, changed))
        health = self.board.health if self.board is not None else Health(self.store)
        ticker = asyncio.create_task(keep_informed(self.notifier, health.healthy, self._summary))
        try:
            self.notifier.send("STATUS=reading the store")
            if await self._start():
                await self._loop()
        finally:
            self.notifier.send("STOPPING=1")
            ticker.cancel()
            await self.workers.stop(STOP_GRACE)
            allow_commands()  # the process goes on (an embedding program, the tests)
            await self._stop_following()
            await self.store.close()
            for cleanup in cleanups:
                cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return EXIT_OK

    def stop(self) -> None:
        """SIGTERM, SIGINT: stop; running commands are killed, no file is left torn."""
        log.info("stopping")
        self.stopping = True
        self.wake.set()

    def request_config_reload(self) -> None:
        """SIGHUP, --watch-config: read settings, conf.d and templates again."""
        self.hup = True
        self.wake.set()

    def _summary(self) -> str:
        where = self.store.connected_to or "store unreachable"
        revision = self.cache.revision if self.cache else 0
        text = f"revision {revision} from {where}; {len(self.engine.loaded.units)} units"
        return text + (f", failing: {', '.join(self.retries)}" if self.retries else ", all in sync")

    async def _start(self) -> bool:
        """Full snapshot, every unit applied, then follow the store. Ready (systemd,
        /readyz) once every unit's first apply has ended, whatever its result."""
        if not await self._initial_snapshot():
            return False
        await in_thread(self.engine.applier().remove_stale_stages, self.engine.loaded.units)
        self._apply({u.name: {} for u in self.engine.loaded.units}, "full snapshot")
        self.follower = asyncio.create_task(self._follow())
        while len(self.workers) and not self.stopping:  # a hung unit holds readiness, not the others
            await self._sleep(3600.0)  # woken by each apply's end and by stop()
        # The snapshot, the compiled templates and the imported modules live as long as the
        # daemon: keep the cyclic garbage collector from walking them again and again (its
        # full passes were the p99 of a change at 10,000 keys).
        gc.collect()
        gc.freeze()
        gc.enable()  # off since start-up (cli.main)
        if self.board is not None:
            self.board.ready = True
        self.notifier.send("READY=1", f"STATUS={self._summary()}")
        return not self.stopping

    async def _stop_following(self) -> None:
        if self.follower is not None:
            self.follower.cancel()
            await asyncio.gather(self.follower, return_exceptions=True)
            self.follower = None

    async def _initial_snapshot(self) -> bool:
        """Retry until the store answers; nothing is written before a full snapshot."""
        backoff, reported = Backoff(STORE_RETRY_FIRST, STORE_RETRY_CAP), False
        while not self.stopping:
            try:
                snap = await self.store.snapshot(self.engine.loaded.prefixes)
            except StoreError as exc:
                if not reported:
                    log.error("store unreachable, keeping existing files and retrying: %s", exc)
                    reported = True
                await self._sleep(backoff.next())
                continue
            if reported:
                log.info("store reachable again")
            self.cache = Cache(snap)
            self._observe_revision()
            self.engine.redactor.observe(snap.values)
            log.info(
                "read %d keys at revision %d; %s", len(snap.values), snap.revision,
                "watching for changes" if self.watching else f"polling every {self._interval():g} s",
            )  # fmt: skip
            return True
        return False

    def _observe_revision(self) -> None:
        if self.board is not None and self.cache is not None:
            self.board.observe_revision(self.cache.revision)

    def _interval(self) -> float:
        return self.settings.interval or DEFAULT_POLL_INTERVAL

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()

    # --- following the store ---------------------------------------------------------

    async def _follow(self) -> None:
        """Feed the cache from the store: one watch stream, or polling without -watch."""
        assert self.cache is not None
        backoff = Backoff(STORE_RETRY_FIRST, STORE_RETRY_CAP)
        while True:
            try:
                if self.watching:
                    async for event in self.store.watch(self.engine.loaded.prefixes, self.cache.revision):
                        self._take(self.cache.apply(event))
                        self._observe_revision()
                        backoff.reset()
                else:
                    await asyncio.sleep(self._interval())
                    snap = await self.store.snapshot(self.engine.loaded.prefixes)
                    self._take(self.cache.apply(Resync(snap)))
                    self._observe_revision()
                    self._reconcile()
                    continue
            except StoreError as exc:
                wait = backoff.next()
                log.error("store: %s; retrying in %.0f s", exc, wait)
                await asyncio.sleep(wait)

    def _take(self, changed: set[str]) -> None:
        """Changed keys -> the units that read them, into the pending batch.

        Called before the revision read is published: /status never shows a revision
        read without the units it made pending."""
        if not changed:
            return
        assert self.cache is not None
        self.engine.redactor.observe({k: self.cache.values.get(k) for k in changed})
        now, revision = time.monotonic(), self.cache.revision
        for unit in self.engine.loaded.units:
            hits = {k: revision for k in changed if any(r.reads(k) for r in unit.resources)}
            if hits:
                # A failed unit is retried now, with the change and the keys it still owes.
                self.batch.add(unit.name, {**self.retries.take_keys(unit.name), **hits}, now)
        self._publish_pending()
        if self.batch:
            self.wake.set()

    def _publish_pending(self) -> None:
        """Show in /status the units with changes collected (in the quiet window) or
        being applied. Called after each change of either, on the event loop; the HTTP
        thread reads the tuple whole."""
        if self.board is not None:
            self.board.pending = tuple(sorted({*self.batch.units, *self.workers}))

    def _apply_ended(self) -> None:
        self._publish_pending()
        self.wake.set()  # pending work of that unit may be due now

    # --- the loop --------------------------------------------------------------------

    def _batch_due(self) -> float | None:
        return self.batch.due(self.settings.wait_min, self.settings.wait_max, busy=self.workers)

    def _due_in(self) -> float | None:
        """Seconds until the next thing to do (None: nothing scheduled)."""
        times = [t for t in (self._batch_due(), self.retries.next_due(busy=self.workers)) if t is not None]
        if self.watching and self.settings.interval:
            times.append(self.next_reconcile)
        return max(0.0, min(times) - time.monotonic()) if times else None

    async def _loop(self) -> None:
        self.next_reconcile = time.monotonic() + (self.settings.interval or 0)
        while True:
            timeout = self._due_in()
            # A SIGHUP or SIGTERM may have come before the loop began (during start-up).
            if not (self.hup or self.stopping) and (timeout is None or timeout > 0):
                await self._sleep(3600.0 if timeout is None else timeout)
            if self.stopping:
                break
            if self.hup:
                self.hup = False
                await self._reload_config()
            now = time.monotonic()
            batch_due = self._batch_due()
            if batch_due is not None and now >= batch_due:
                self._apply(self.batch.take(busy=self.workers))
            due: dict[str, Keys] = {name: {} for name in self.retries.due(now, busy=self.workers)}
            if due:
                self._apply(due, "retry")
            if self.watching and self.settings.interval and now >= self.next_reconcile:
                self.next_reconcile = now + self.settings.interval
                self._reconcile()

    def _apply(self, batch: Mapping[str, Keys], why: str = "") -> None:
        """Start applying each unit of ``batch`` (none is busy); each unit's keys (if any)
        are named in its log lines."""
        assert self.cache is not None
        applier = self.engine.applier()
        for unit in self.engine.loaded.units:
            if unit.name in batch:
                self.workers.start(unit.name, self._apply_unit(applier, unit, batch[unit.name], why))
        self._publish_pending()

    async def _apply_unit(self, applier: Applier, unit: Unit, keys: Keys, why: str) -> None:
        assert self.cache is not None
        revision = self.cache.revision
        cause = Cause.changed(keys, revision) if keys else Cause(why, revision)
        # Rendered here, on the loop, before the first await: the follower cannot change
        # the cache's views meanwhile. Checks, writes and reloads wait on processes and
        # disks: a thread.
        rendered = applier.render(unit, self.cache.view)
        result = await in_thread(applier.complete, rendered, cause)
        if result.report:  # -noop -watch: what would change, as it would
            print(result.report, flush=True)
        self._record(unit, result, revision, keys)

    def _record(self, unit: Unit, result: UnitResult, revision: int, keys: Keys) -> None:
        next_retry: float | None = None
        if result.ok:
            self.retries.succeeded(unit.name)
            for r in unit.resources:
                self.on_disk[r.dest] = _signature(r.dest)
        else:
            # Bad data or a template bug: only a key change or a config reload can fix
            # it, and both retry at once. No timer, no error every minute.
            render_failed = result.failed_step is StepKind.RENDER
            wait = self.retries.failed(unit.name, keys, time.monotonic(), wait_for_change=render_failed)
            extra = {"unit": unit.name}
            if wait is None:
                log.warning(
                    "unit %s: waiting for a change of its keys or its templates", unit.name, extra=extra
                )
            else:
                next_retry = time.time() + wait
                attempts = self.retries.attempts(unit.name)
                log.warning(
                    "unit %s: will retry in %.0f s (attempt %d)", unit.name, wait, attempts, extra=extra
                )
        if self.board is not None:
            self.board.record(unit, result, revision, next_retry)

    def _reconcile(self) -> None:
        """Destinations edited or removed behind our back are rendered and restored."""
        now = time.monotonic()
        for unit in self.engine.loaded.units:
            if unit.name in self.retries or unit.name in self.batch:
                continue
            for r in unit.resources:
                now_on_disk = _signature(r.dest)
                if now_on_disk == _MISSING or now_on_disk != self.on_disk.get(r.dest):
                    log.warning("%s changed on disk; restoring", r.dest)
                    self.batch.add(unit.name, {}, now)
                    break
        self._publish_pending()
        if self.batch:
            self.wake.set()

    async def _reload_config(self) -> None:
        try:
            settings = self.engine.reread_settings()
            loaded = Loaded.from_settings(settings)
        except ConfigError as exc:
            log.error("config reload: new configuration is invalid, keeping the old one: %s", exc)
            return
        old = self.engine.loaded
        self.engine.settings, self.engine.loaded = settings, loaded
        if self.board is not None:
            self.board.expect_units([u.name for u in loaded.units])
        if self.cache is not None:
            self.cache.forget_views()
        logging.getLogger().setLevel(LEVELS.get(settings.log_level.lower(), "INFO"))
        log.info("config reload: loaded %d resources in %d units", len(loaded.resources), len(loaded.units))
        if loaded.prefixes != old.prefixes:
            log.info("config reload: watched prefixes changed; following them from a new snapshot")
            await self._stop_following()
            await self.workers.wait()
            self.batch.take()
            self._publish_pending()
            self.retries.clear()
            await self._start()
            return
        self.batch.add_due_now([u.name for u in loaded.units], time.monotonic(), settings.wait_max)
        self._publish_pending()


_MISSING = (0, 0, 0)


def _signature(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return _MISSING
    return (st.st_ino, st.st_mtime_ns, st.st_size)
