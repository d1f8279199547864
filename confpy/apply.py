"""One unit, end to end: render -> compare -> stage -> check -> replace -> reload.

All or nothing per unit: if any file fails to render or any check fails, no
destination of the unit changes and nothing is reloaded. The reload runs once per
unit change, however many of its files changed.
"""

from __future__ import annotations

import difflib
import enum
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confpy.commands import CommandResult, check_command, run_reload, run_shell
from confpy.errors import RenderError
from confpy.keyview import KeyView
from confpy.render import Renderer
from confpy.resource import TemplateResource, Unit
from confpy.writer import (
    Stage,
    Target,
    WriteError,
    mark_pending,
    pending_marker,
    read_target,
    remove_stale_stages,
    replace,
    replace_order,
)

log = logging.getLogger("confpy.apply")


class Mode(enum.Enum):
    APPLY = "apply"  # the normal mode
    NOOP = "noop"  # compare and check; report a diff; change nothing
    SYNC_ONLY = "sync-only"  # write files; run no check and no reload (confd's -sync-only)


class Status(enum.Enum):
    IN_SYNC = "in sync"
    APPLIED = "applied"
    WOULD_CHANGE = "would change"
    FAILED = "failed"


@dataclass
class UnitResult:
    unit: str
    status: Status
    changed: list[Path] = field(default_factory=list)
    failed_step: str = ""  # render, write, check or reload
    error: str = ""
    report: str = ""  # -noop: what would change
    reloads: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAILED


ViewFor = Callable[[TemplateResource], KeyView]


@dataclass
class Applier:
    renderer: Renderer
    node_name: str
    mode: Mode = Mode.APPLY
    keep_stage: bool = False

    def run(self, unit: Unit, view_for: ViewFor, why: str = "") -> UnitResult:
        try:
            targets = self._render(unit, view_for)
        except RenderError as exc:
            return self._failed(unit, "render", str(exc))
        except WriteError as exc:
            return self._failed(unit, "write", str(exc))
        if self.mode is Mode.NOOP:
            return self._review(unit, targets)
        return self._apply(unit, targets, why)

    def _render(self, unit: Unit, view_for: ViewFor) -> list[Target]:
        targets = []
        for r in unit.resources:
            start = time.perf_counter()
            view = view_for(r)
            text = self.renderer.render(r.src, view, self.node_name)
            log.debug(
                "rendered %s from %d keys in %.1f ms", r.name, len(view), (time.perf_counter() - start) * 1e3
            )
            targets.append(read_target(r, text.encode()))
        return targets

    def _failed(self, unit: Unit, step: str, error: str) -> UnitResult:
        log.error("unit %s: %s failed: %s", unit.name, step, error)
        return UnitResult(unit.name, Status.FAILED, failed_step=step, error=error)

    def _checks(self, targets: list[Target], stage: Stage) -> list[CommandResult]:
        results = []
        for t in targets:
            if t.resource.check_cmd:
                cmd = check_command(t.resource.check_cmd, str(stage.paths[t.dest]))
                results.append(run_shell(cmd, t.resource.check_timeout))
        return results

    def _apply(self, unit: Unit, targets: list[Target], why: str) -> UnitResult:
        changed = [t for t in targets if t.changed]
        marker = pending_marker(unit.name, targets)
        pending = marker.exists()
        if not changed and not pending:
            return UnitResult(unit.name, Status.IN_SYNC)
        remove_stale_stages(marker.parent)
        if changed:
            try:
                self._replace(unit, targets, changed, marker)
            except WriteError as exc:
                return self._failed(unit, "write", str(exc))
            except _CheckFailed as exc:
                return self._failed(unit, "check", str(exc))
            for t in changed:
                log.info("wrote %s (unit %s)%s", t.dest, unit.name, f": {why}" if why else "")
        else:
            log.info("unit %s: finishing an interrupted apply (%s)", unit.name, marker)
        result = UnitResult(unit.name, Status.APPLIED, [t.dest for t in changed])
        if self.mode is Mode.SYNC_ONLY:
            marker.unlink(missing_ok=True)
            return result
        for spec in unit.reloads():
            outcome = run_reload(spec)
            if not outcome.ok:
                failed = self._failed(unit, "reload", outcome.summary())
                failed.changed = result.changed
                return failed
            result.reloads += 1
            log.info("unit %s: reloaded: %s", unit.name, outcome.summary())
        marker.unlink(missing_ok=True)
        return result

    def _replace(self, unit: Unit, targets: list[Target], changed: list[Target], marker: Path) -> None:
        stage = Stage(targets)
        try:
            if self.mode is not Mode.SYNC_ONLY:
                failures = [c for c in self._checks(targets, stage) if not c.ok]
                if failures:
                    raise _CheckFailed("\n".join(c.summary() for c in failures))
            mark_pending(marker, changed)
            for t in replace_order(changed):
                replace(stage.paths[t.dest], t)
        finally:
            if self.keep_stage:
                log.info("unit %s: staged files kept in %s", unit.name, stage.dir)
            else:
                stage.remove()

    def _review(self, unit: Unit, targets: list[Target]) -> UnitResult:
        changed = [t for t in targets if t.changed]
        if not changed:
            return UnitResult(unit.name, Status.IN_SYNC)
        parts = [f"=== unit {unit.name}: {len(changed)} of {len(targets)} file(s) would change"]
        for t in changed:
            parts.append(_diff(t))
        try:
            stage = Stage(targets, root=Path(tempfile.gettempdir()))
        except WriteError as exc:
            return self._failed(unit, "write", str(exc))
        try:
            checks = self._checks(targets, stage)
        finally:
            stage.remove()
        parts.extend(f"check {c.summary()}" for c in checks)
        failed = [c for c in checks if not c.ok]
        reloads = [spec.describe() for spec in unit.reloads()]
        parts.append(
            "no reload: a check failed" if failed else f"would reload once: {'; '.join(reloads) or 'nothing'}"
        )
        report = "\n".join(parts)
        if failed:
            result = self._failed(unit, "check", "\n".join(c.summary() for c in failed))
            result.report = report
            return result
        return UnitResult(unit.name, Status.WOULD_CHANGE, [t.dest for t in changed], report=report)


class _CheckFailed(Exception):
    pass


def _diff(t: Target) -> str:
    old = (t.current or b"").decode(errors="replace").splitlines(keepends=True)
    new = t.content.decode(errors="replace").splitlines(keepends=True)
    label = str(t.dest)
    lines = list(difflib.unified_diff(old, new, label if t.current is not None else "/dev/null", label))
    text = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    meta = t.meta_changes()
    return text + "".join(f"{t.dest}: {m}\n" for m in meta)
