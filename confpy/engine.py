"""The loaded configuration and the one-shot modes: -onetime, -noop and --stdout review.

:class:`Loaded` is everything derived from conf.d and the templates (replaced whole on
SIGHUP); :class:`Engine` owns it with the settings, the store and the redactor. The
daemon (-watch, -interval) is :mod:`confpy.daemon`; :mod:`confpy.cli` picks the mode.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confpy import calico
from confpy.apply import Applier, Mode, Status, UnitResult
from confpy.backoff import Backoff
from confpy.cache import Cache
from confpy.errors import EXIT_FAILED, EXIT_OK, EXIT_PENDING, EXIT_UNREACHABLE, ConfigError, RenderError
from confpy.keys import collapse
from confpy.redact import Redactor
from confpy.render import Renderer, TemplatePlugin
from confpy.resource import TemplateResource, Unit, group_units, load_resources
from confpy.settings import STORE_FIELDS, Settings, build_settings
from confpy.stores import UseStore, open_reader, open_store
from confpy.stores.base import Reader, Snapshot, Store, StoreError, StoreUnreachable

log = logging.getLogger("confpy")

#: Retrying a store that does not answer, within -connect-timeout.
CONNECT_RETRY_FIRST, CONNECT_RETRY_CAP = 0.1, 2.0

#: The globals every template may use beyond confd's functions.
TEMPLATE_PLUGINS: tuple[TemplatePlugin, ...] = (calico.template_globals,)


@dataclass
class Loaded:
    """Everything derived from conf.d and the templates; replaced whole on SIGHUP."""

    renderer: Renderer
    resources: list[TemplateResource]
    units: list[Unit]
    prefixes: list[str]  # what the store is asked for: every resource key, collapsed

    @classmethod
    def from_settings(cls, settings: Settings) -> Loaded:
        renderer = Renderer(settings.confdir / "templates", TEMPLATE_PLUGINS)
        resources = load_resources(
            settings.confdir, settings.node_name, settings.prefix, renderer.compile, settings.dest_root
        )
        if settings.resources:
            resources = select_resources(resources, settings.resources)
        units = group_units(resources)
        prefixes = collapse(k for r in resources for k in r.keys)
        return cls(renderer, resources, units, prefixes)


def select_resources(resources: list[TemplateResource], names: Iterable[str]) -> list[TemplateResource]:
    """The named resources (by conf.d name, destination or destination's base name, such
    as ``bird.cfg``), and the rest of their units (a unit is applied whole)."""
    wanted = set(names)

    def named(r: TemplateResource) -> set[str]:
        return {r.name, str(r.dest), r.dest.name}

    known = set().union(*(named(r) for r in resources))
    unknown = sorted(wanted - known)
    if unknown:
        choices = ", ".join(sorted({r.name for r in resources} | {r.dest.name for r in resources}))
        raise ConfigError(f"--resource: no resource named {unknown[0]!r} (known: {choices})")
    units = {r.unit for r in resources if named(r) & wanted}
    return [r for r in resources if r.unit in units]


@dataclass
class Engine:
    settings: Settings
    loaded: Loaded
    redactor: Redactor
    #: The command-line flags the settings came from; SIGHUP builds them again from these.
    flags: Mapping[str, Any] = field(default_factory=dict)
    #: The store, opened when first needed (a one-shot run may read without it).
    opened: Store | None = None

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
            redactor or Redactor(settings.sensitive_keys),
            flags or {},
            store,
        )

    @property
    def store(self) -> Store:
        if self.opened is None:
            self.opened = open_store(self.settings)
        return self.opened

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

    @property
    def one_shot(self) -> bool:
        """-onetime, --stdout, or -noop without -watch: read once, apply or show, exit."""
        s = self.settings
        return s.stdout or s.onetime or (s.noop and not s.watch)

    def run_once(self) -> int:
        return self.review() if self.settings.stdout else self.onetime()

    def read_once(self) -> Cache | None:
        """One snapshot of every prefix, for a one-shot mode; None if the store is unreachable.

        A store that does not answer (etcd not up yet while the node boots) is tried
        again with backoff until ``-connect-timeout`` has passed.
        """
        start = time.perf_counter()
        deadline = time.monotonic() + self.settings.connect_timeout
        backoff = Backoff(CONNECT_RETRY_FIRST, CONNECT_RETRY_CAP)
        while True:
            try:
                snap = self._read()
                break
            except StoreUnreachable as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("store unreachable for %g s: %s", self.settings.connect_timeout, exc)
                    return None
                if backoff.attempts == 0:
                    log.warning("store unreachable, trying for %.0f s more: %s", left, exc)
                time.sleep(min(backoff.next(), left))
            except StoreError as exc:  # refused, or a data file that cannot be read
                log.error("store unreachable: %s", exc)
                return None
        log.debug(
            "read %d keys at revision %d in %.0f ms",
            len(snap.values), snap.revision, (time.perf_counter() - start) * 1e3,
        )  # fmt: skip
        self.redactor.observe(snap.values)
        return Cache(snap)

    def _read(self) -> Snapshot:
        """A synchronous read where the store has one (files, the environment, etcd's
        JSON gateway for a small read), else the store's own snapshot on an event loop."""
        reader = self.opened if isinstance(self.opened, Reader) else None
        if reader is None and self.opened is None:
            reader = open_reader(self.settings)
        if reader is not None:
            try:
                return reader.read(self.loaded.prefixes)
            except UseStore as why:
                log.debug("%s", why)
        import asyncio  # gRPC's store needs an event loop; a one-shot read of files does not

        return asyncio.run(self._snapshot())

    async def _snapshot(self) -> Snapshot:
        store, self.opened = self.store, None  # a new one per try: it belongs to this loop
        try:
            return await store.snapshot(self.loaded.prefixes)
        finally:
            await store.close()

    def onetime(self) -> int:
        cache = self.read_once()
        if cache is None:
            return EXIT_UNREACHABLE
        applier = self.applier()
        applier.remove_stale_stages(self.loaded.units)
        # Rendered one by one (CPU), then completed side by side: a unit never waits for
        # another unit's check or reload.
        rendered = [applier.render(u, cache.view) for u in self.loaded.units]
        if len(rendered) == 1:
            results = [applier.complete(rendered[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor  # several units only

            with ThreadPoolExecutor(max_workers=min(len(rendered), 8)) as pool:
                results = list(pool.map(applier.complete, rendered))
        for r in results:
            if r.report:
                print(r.report, flush=True)
        return _summarise(results, applier.mode, self.settings.detailed_exitcode)

    def review(self) -> int:
        """--stdout: each selected resource rendered to standard output; no writes, no commands."""
        cache = self.read_once()
        if cache is None:
            return EXIT_UNREACHABLE
        status = EXIT_OK
        pending = False
        for r in self.loaded.resources:
            try:
                text = self.loaded.renderer.render(r.src, cache.view(r), self.settings.node_name)
            except RenderError as exc:
                log.error("%s: %s", r.name, exc)
                status = EXIT_FAILED
                continue
            state = _disk_state(r.dest, text.encode())
            pending = pending or state != "same as on disk"
            if not self.settings.show_secrets:
                text = self.redactor(text)
            sys.stdout.write(f"# ==> {r.dest} ({r.name}; {state}) <==\n{text}")
            if text and not text.endswith("\n"):
                sys.stdout.write("\n")
        sys.stdout.flush()
        if status == EXIT_OK and pending and self.settings.detailed_exitcode:
            return EXIT_PENDING
        return status


def _disk_state(dest: Path, content: bytes) -> str:
    try:
        return "same as on disk" if dest.read_bytes() == content else "differs from disk"
    except FileNotFoundError:
        return "not on disk yet"
    except OSError as exc:
        return f"unreadable on disk: {exc.strerror}"


def _summarise(results: Sequence[UnitResult], mode: Mode, detailed: bool = False) -> int:
    counts: dict[Status, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    text = ", ".join(f"{n} {s.value}" for s, n in counts.items())
    failed = [r for r in results if not r.ok]
    (log.error if failed else log.info)(
        "%s%d unit(s): %s", "noop: " if mode is Mode.NOOP else "", len(results), text
    )
    if failed:
        return EXIT_FAILED
    if detailed and any(r.status is Status.WOULD_CHANGE for r in results):
        return EXIT_PENDING
    return EXIT_OK
