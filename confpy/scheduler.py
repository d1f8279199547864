"""The processing loops: -onetime, --stdout review, -watch (the daemon) and -interval polling.

Data flows one way: store -> cache -> changed keys -> affected units -> (quiet window)
-> render/stage/check/replace/reload (confpy.apply) -> logs and exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confpy.apply import Applier, Cause, Mode, Status, UnitResult
from confpy.cache import Cache
from confpy.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, ConfigError, RenderError
from confpy.health import Health
from confpy.logs import LEVELS
from confpy.notify import Notifier
from confpy.redact import Redactor
from confpy.render import Renderer
from confpy.resource import TemplateResource, Unit, group_units, load_resources
from confpy.settings import DEFAULT_POLL_INTERVAL, STORE_FIELDS, Settings, build_settings
from confpy.stores import open_store
from confpy.stores.base import Resync, Store, StoreError, collapse_prefixes

if TYPE_CHECKING:
    from confpy.status import Board

log = logging.getLogger("confpy")

RETRY_MIN, RETRY_MAX = 1.0, 60.0


@dataclass
class Loaded:
    """Everything derived from conf.d and the templates; replaced whole on SIGHUP."""

    renderer: Renderer
    resources: list[TemplateResource]
    units: list[Unit]
    prefixes: list[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Loaded:
        renderer = Renderer(settings.confdir / "templates")
        resources = load_resources(
            settings.confdir, settings.node_name, settings.prefix, renderer.compile, settings.dest_root
        )
        if settings.resources:
            resources = _select(resources, settings.resources)
        units = group_units(resources)
        prefixes = collapse_prefixes(k for r in resources for k in r.keys)
        return cls(renderer, resources, units, prefixes)


def _select(resources: list[TemplateResource], names: Iterable[str]) -> list[TemplateResource]:
    """The named resources, and the rest of their units (a unit is applied whole)."""
    wanted = set(names)
    known = {r.name for r in resources} | {str(r.dest) for r in resources}
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigError(f"--resource: no resource named {unknown[0]!r} (known: {', '.join(sorted(known))})")
    units = {r.unit for r in resources if r.name in wanted or str(r.dest) in wanted}
    return [r for r in resources if r.unit in units]


@dataclass
class Engine:
    settings: Settings
    loaded: Loaded
    store: Store
    redactor: Redactor
    #: The command-line flags the settings came from; SIGHUP builds them again from these.
    flags: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        settings: Settings,
        store: Store | None = None,
        redactor: Redactor | None = None,
        flags: Mapping[str, Any] | None = None,
    ) -> Engine:
        return cls(
            settings,
            Loaded.from_settings(settings),
            store or open_store(settings),
            redactor or Redactor(settings.sensitive_keys),
            flags or {},
        )

    def reread_settings(self) -> Settings:
        """Settings built again from flags, environment and config file (for SIGHUP).

        The store is kept: its settings take a restart, which the log says.
        """
        if not self.flags:
            return self.settings
        new = build_settings(self.flags)
        moved = [f for f in STORE_FIELDS if getattr(new, f) != getattr(self.settings, f)]
        if moved:
            log.warning(
                "config reload: store settings changed (%s): they apply after a restart", ", ".join(moved)
            )
            for name in moved:
                setattr(new, name, getattr(self.settings, name))
        return new

    def applier(self) -> Applier:
        s = self.settings
        mode = Mode.NOOP if s.noop else Mode.SYNC_ONLY if s.sync_only else Mode.APPLY
        shown = Redactor() if s.show_secrets and mode is Mode.NOOP else self.redactor
        return Applier(self.loaded.renderer, s.node_name, mode, s.keep_stage_file, shown)

    async def main(self) -> int:
        s = self.settings
        if s.stdout:
            return await self.review()
        if s.onetime or (s.noop and not s.watch):
            return await self.onetime()
        return await Daemon(self).run()

    async def _snapshot_once(self) -> Cache | None:
        try:
            start = time.perf_counter()
            snap = await self.store.snapshot(self.loaded.prefixes)
        except StoreError as exc:
            log.error("store unreachable: %s", exc)
            return None
        finally:
            await self.store.close()
        log.debug(
            "read %d keys at revision %d in %.0f ms",
            len(snap.values), snap.revision, (time.perf_counter() - start) * 1e3,
        )  # fmt: skip
        self.redactor.observe(snap.values)
        return Cache(snap)

    async def onetime(self) -> int:
        cache = await self._snapshot_once()
        if cache is None:
            return EXIT_UNREACHABLE
        applier = self.applier()
        results = [applier.run(u, cache.view) for u in self.loaded.units]
        for r in results:
            if r.report:
                print(r.report, flush=True)
        return _summarise(results, applier.mode)

    async def review(self) -> int:
        """--stdout: each selected resource rendered to standard output; no writes, no commands."""
        cache = await self._snapshot_once()
        if cache is None:
            return EXIT_UNREACHABLE
        status = EXIT_OK
        for r in self.loaded.resources:
            try:
                text = self.loaded.renderer.render(r.src, cache.view(r), self.settings.node_name)
            except RenderError as exc:
                log.error("%s: %s", r.name, exc)
                status = EXIT_FAILED
                continue
            state = _disk_state(r.dest, text.encode())
            if not self.settings.show_secrets:
                text = self.redactor(text)
            sys.stdout.write(f"# ==> {r.dest} ({r.name}; {state}) <==\n{text}")
            if text and not text.endswith("\n"):
                sys.stdout.write("\n")
        sys.stdout.flush()
        return status


def _disk_state(dest: Path, content: bytes) -> str:
    try:
        return "same as on disk" if dest.read_bytes() == content else "differs from disk"
    except FileNotFoundError:
        return "not on disk yet"
    except OSError as exc:
        return f"unreadable on disk: {exc.strerror}"


def _summarise(results: list[UnitResult], mode: Mode) -> int:
    counts: dict[Status, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    text = ", ".join(f"{n} {s.value}" for s, n in counts.items())
    failed = [r for r in results if not r.ok]
    (log.error if failed else log.info)(
        "%s%d unit(s): %s", "noop: " if mode is Mode.NOOP else "", len(results), text
    )
    return EXIT_FAILED if failed else EXIT_OK


@dataclass
class _Retry:
    attempts: int = 0
    due: float = 0.0
    keys: set[str] = field(default_factory=set)  # the changes not yet applied, for the next log line


@dataclass
class Daemon:
    """-watch and -interval: keep every unit applied as the store changes."""

    engine: Engine
    cache: Cache | None = None
    dirty: dict[str, set[str]] = field(default_factory=dict)  # unit -> keys that changed
    first_change: float | None = None
    last_change: float = 0.0
    retries: dict[str, _Retry] = field(default_factory=dict)
    on_disk: dict[Path, tuple[int, int, int]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    follower: asyncio.Task[None] | None = None
    next_reconcile: float = 0.0
    stopping: bool = False
    hup: bool = False
    board: Board | None = None
    notifier: Notifier = field(default_factory=Notifier)

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def store(self) -> Store:
        return self.engine.store

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        cleanups: list[Callable[[], None]] = []
        if self.settings.metrics_addr:
            from confpy.status import Board, serve  # prometheus-client: only when asked for

            self.board = Board(self.store)
            cleanups.append(serve(self.board, self.settings.metrics_addr))
        if self.settings.watch_config:
            from confpy.configwatch import watch_config  # watchdog: only when asked for

            # watchdog calls from its own thread: hand the request to the loop.
            def changed() -> None:
                loop.call_soon_threadsafe(self._sighup)

            cleanups.append(watch_config(self.settings.confdir, changed))
        ticker = asyncio.create_task(self._tick())
        try:
            self.notifier.send("STATUS=reading the store")
            if await self._start():
                self.notifier.send("READY=1", f"STATUS={self._summary()}")
                await self._loop()
        finally:
            self.notifier.send("STOPPING=1")
            ticker.cancel()
            await self._stop_following()
            await self.store.close()
            for cleanup in cleanups:
                cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return EXIT_OK

    def _summary(self) -> str:
        failing = sorted(self.retries)
        where = self.store.connected_to or "store unreachable"
        revision = self.cache.revision if self.cache else 0
        text = f"revision {revision} from {where}; {len(self.engine.loaded.units)} units"
        return text + (f", failing: {', '.join(failing)}" if failing else ", all in sync")

    async def _tick(self) -> None:
        """systemd's watchdog and STATUS line, while the store is within its retry budget."""
        interval = self.notifier.watchdog_interval
        if not self.notifier.enabled:
            return
        health = self.board.health if self.board is not None else Health(self.store)
        last = ""
        while True:
            await asyncio.sleep(min(interval or 5.0, 5.0))
            if interval and health.healthy():
                self.notifier.send("WATCHDOG=1")
            summary = self._summary()
            if summary != last:
                self.notifier.send(f"STATUS={summary}")
                last = summary

    def _stop(self) -> None:
        log.info("stopping")
        self.stopping = True
        self.wake.set()

    def _sighup(self) -> None:
        self.hup = True
        self.wake.set()

    @property
    def watching(self) -> bool:
        return self.settings.watch

    async def _start(self) -> bool:
        """Full snapshot, every unit applied, then follow the store."""
        if not await self._initial_snapshot():
            return False
        await self._apply({u.name: set() for u in self.engine.loaded.units}, "full snapshot")
        # The snapshot, the compiled templates and the imported modules live as long as the
        # daemon: keep the cyclic garbage collector from walking them again and again (its
        # full passes were the p99 of a change at 10,000 keys).
        gc.collect()
        gc.freeze()
        gc.enable()  # off since start-up (cli.main)
        self.follower = asyncio.create_task(self._follow())
        return True

    async def _stop_following(self) -> None:
        if self.follower is not None:
            self.follower.cancel()
            await asyncio.gather(self.follower, return_exceptions=True)
            self.follower = None

    async def _initial_snapshot(self) -> bool:
        """Retry until the store answers; nothing is written before a full snapshot."""
        delay, reported = 0.5, False
        while not self.stopping:
            try:
                snap = await self.store.snapshot(self.engine.loaded.prefixes)
            except StoreError as exc:
                if not reported:
                    log.error("store unreachable, keeping existing files and retrying: %s", exc)
                    reported = True
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if reported:
                log.info("store reachable again")
            self.cache = Cache(snap)
            self.engine.redactor.observe(snap.values)
            log.info(
                "read %d keys at revision %d; %s", len(snap.values), snap.revision,
                "watching for changes" if self.watching else f"polling every {self._interval():g} s",
            )  # fmt: skip
            return True
        return False

    def _interval(self) -> float:
        return self.settings.interval or DEFAULT_POLL_INTERVAL

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()

    async def _follow(self) -> None:
        """Feed the cache from the store: one watch stream, or polling without -watch."""
        assert self.cache is not None
        delay = RETRY_MIN
        while True:
            try:
                if self.watching:
                    async for event in self.store.watch(self.engine.loaded.prefixes, self.cache.revision):
                        self._take(self.cache.apply(event))
                        delay = RETRY_MIN
                else:
                    await asyncio.sleep(self._interval())
                    snap = await self.store.snapshot(self.engine.loaded.prefixes)
                    self._take(self.cache.apply(Resync(snap)))
                    self._reconcile()
                    continue
            except StoreError as exc:
                log.error("store: %s; retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _take(self, changed: set[str]) -> None:
        if not changed:
            return
        assert self.cache is not None
        self.engine.redactor.observe({k: self.cache.values.get(k) for k in changed})
        now = time.monotonic()
        for unit in self.engine.loaded.units:
            hits = {k for k in changed if any(r.reads(k) for r in unit.resources)}
            if hits:
                pending = self.dirty.setdefault(unit.name, set())
                pending.update(hits)
                failed = self.retries.pop(unit.name, None)  # retried now, with the change
                if failed is not None:
                    pending.update(failed.keys)
        if self.dirty:
            self.first_change = self.first_change or now
            self.last_change = now
            self.wake.set()

    def _batch_due(self) -> float | None:
        """When the pending changes are applied: after -wait-min without a new change, at
        the latest -wait-max after the first one (None: nothing pending)."""
        if not self.dirty or self.first_change is None:
            return None
        return min(self.last_change + self.settings.wait_min, self.first_change + self.settings.wait_max)

    def _due_in(self) -> float | None:
        """Seconds until the next thing to do (None: nothing scheduled)."""
        now = time.monotonic()
        batch = self._batch_due()
        times = [] if batch is None else [batch]
        times.extend(r.due for r in self.retries.values() if r.due != math.inf)
        if self.watching and self.settings.interval:
            times.append(self.next_reconcile)
        return max(0.0, min(times) - now) if times else None

    async def _loop(self) -> None:
        self.next_reconcile = time.monotonic() + (self.settings.interval or 0)
        while True:
            timeout = self._due_in()
            if timeout is None or timeout > 0:
                await self._sleep(3600.0 if timeout is None else timeout)
            if self.stopping:
                break
            if self.hup:
                self.hup = False
                await self._reload_config()
            now = time.monotonic()
            batch_due = self._batch_due()
            if batch_due is not None and now >= batch_due:
                batch, self.dirty, self.first_change = self.dirty, {}, None
                await self._apply(batch)
            due = {name: set[str]() for name, r in self.retries.items() if r.due <= now}
            if due:
                await self._apply(due, "retry")
            if self.watching and self.settings.interval and now >= self.next_reconcile:
                self.next_reconcile = now + self.settings.interval
                self._reconcile()

    async def _apply(self, batch: dict[str, set[str]], why: str = "") -> None:
        """Apply the units in ``batch``; each unit's keys (if any) are named in its log lines."""
        assert self.cache is not None
        cache = self.cache
        applier = self.engine.applier()
        for unit in [u for u in self.engine.loaded.units if u.name in batch]:
            keys = batch[unit.name]
            revision = cache.revision
            cause = Cause.changed(keys, revision) if keys else Cause(why, revision)
            # Rendered here, on the loop: the follower cannot change the cache's views
            # meanwhile. Checks, writes and reloads wait on processes and disks: a thread.
            rendered = applier.render(unit, cache.view)
            result = await asyncio.to_thread(applier.complete, rendered, cause)
            if result.report:  # -noop -watch: what would change, as it would
                print(result.report, flush=True)
            self._record(unit, result, revision, keys)
        if self.board is not None and not self.board.ready:
            self.board.ready = True

    def _record(self, unit: Unit, result: UnitResult, revision: int, keys: set[str]) -> None:
        next_retry: float | None = None
        if result.ok:
            self.retries.pop(unit.name, None)
            for r in unit.resources:
                self.on_disk[r.dest] = _signature(r.dest)
        else:
            retry = self.retries.setdefault(unit.name, _Retry())
            retry.keys |= keys
            retry.attempts += 1
            if result.failed_step == "render":
                # Bad data or a template bug: only a key change or a config reload can fix it,
                # and both retry at once. No timer, no error every minute.
                retry.due = math.inf
                log.warning("unit %s: waiting for a change of its keys or its templates", unit.name,
                            extra={"unit": unit.name})  # fmt: skip
            else:
                wait = min(RETRY_MIN * 2 ** (retry.attempts - 1), RETRY_MAX)
                retry.due = time.monotonic() + wait
                next_retry = time.time() + wait
                log.warning("unit %s: will retry in %.0f s (attempt %d)", unit.name, wait, retry.attempts,
                            extra={"unit": unit.name})  # fmt: skip
        if self.board is not None:
            self.board.record(unit, result, revision, next_retry)

    def _reconcile(self) -> None:
        """Destinations edited or removed behind our back are rendered and restored."""
        for unit in self.engine.loaded.units:
            if unit.name in self.retries or unit.name in self.dirty:
                continue
            for r in unit.resources:
                now_on_disk = _signature(r.dest)
                if now_on_disk == _MISSING or now_on_disk != self.on_disk.get(r.dest):
                    log.warning("%s changed on disk; restoring", r.dest)
                    self.dirty.setdefault(unit.name, set())
                    self.first_change = self.first_change or time.monotonic()
                    break
        if self.dirty:
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
        if self.cache is not None:
            self.cache.forget_views()
        logging.getLogger().setLevel(LEVELS.get(settings.log_level.lower(), "INFO"))
        log.info("config reload: loaded %d resources in %d units", len(loaded.resources), len(loaded.units))
        if loaded.prefixes != old.prefixes:
            log.info("config reload: watched prefixes changed; following them from a new snapshot")
            await self._stop_following()
            self.dirty.clear()
            self.retries.clear()
            await self._start()
            return
        self.dirty.update({u.name: set() for u in loaded.units})
        self.first_change = self.last_change = time.monotonic() - self.settings.wait_max


_MISSING = (0, 0, 0)


def _signature(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return _MISSING
    return (st.st_ino, st.st_mtime_ns, st.st_size)
