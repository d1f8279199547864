"""One unit, end to end: render -> compare -> stage -> check -> replace -> reload.

All or nothing per unit: if any file fails to render or any check fails, no
destination of the unit changes and nothing is reloaded. The reload runs once per
unit change, however many of its files changed.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confpy.commands import CommandResult, check_command, run_shell
from confpy.errors import RenderError, printable
from confpy.keys import as_bytes
from confpy.keyview import KeyView
from confpy.redact import Redactor
from confpy.reload import reader_gid, run_reload
from confpy.render import Renderer
from confpy.resource import ReloadSpec, TemplateResource, Unit
from confpy.writer import (
    Stage,
    Target,
    WriteError,
    common_dir,
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


class StepKind(enum.Enum):
    RENDER = "render"
    CHECK = "check"
    WRITE = "write"
    RELOAD = "reload"


class Status(enum.Enum):
    IN_SYNC = "in sync"
    APPLIED = "applied"
    WOULD_CHANGE = "would change"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Step:
    """One render, check, write or reload: for metrics and per-resource status."""

    kind: StepKind
    name: str  # the resource (the unit, for a reload)
    ok: bool
    seconds: float


@dataclass
class UnitResult:
    unit: str
    status: Status
    changed: list[Path] = field(default_factory=list)
    failed_step: StepKind | None = None
    error: str = ""
    report: str = ""  # -noop: what would change
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAILED

    @property
    def reloads(self) -> int:
        return sum(1 for s in self.steps if s.kind is StepKind.RELOAD and s.ok)


ViewFor = Callable[[TemplateResource], KeyView]


@dataclass(frozen=True)
class Cause:
    """Why a unit is applied, for the log line of each write."""

    text: str = ""
    revision: int | None = None
    keys: tuple[str, ...] = ()

    @classmethod
    def changed(cls, keys: Mapping[str, int], revision: int) -> Cause:
        """``keys``: each changed key and the revision it changed at; ``revision``: the
        one rendered (the latest). Each key is named with its own revision."""
        ordered = sorted(keys, key=lambda k: (keys[k], k))
        shown: dict[int, list[str]] = {}
        for k in ordered[:5]:
            shown.setdefault(keys[k], []).append(k)
        parts = [f"at revision {rev}: {', '.join(ks)}" for rev, ks in shown.items()]
        more = f" (+{len(ordered) - 5} more)" if len(ordered) > 5 else ""
        text = "keys changed " + "; ".join(parts) + more
        return cls(text, revision, tuple(ordered[:100]))


class _Failed(Exception):
    def __init__(self, step: StepKind, error: str) -> None:
        super().__init__(error)
        self.step = step


@dataclass(frozen=True, slots=True)
class Text:
    """One resource's new content, and whether it holds a secret (it is then 0600)."""

    resource: TemplateResource
    content: bytes
    secret: bool


@dataclass
class Rendered:
    """A unit's files rendered, or why they could not be."""

    unit: Unit
    texts: list[Text] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    failure: _Failed | None = None


@dataclass
class Applier:
    renderer: Renderer
    node_name: str
    mode: Mode = Mode.APPLY
    keep_stage: bool = False
    redact: Redactor = field(default_factory=Redactor)

    def remove_stale_stages(self, units: Iterable[Unit]) -> None:
        """At start: remove the stages a killed confpy left beside the units' files. The
        apply of a unit that writes removes them too, but a unit in sync or one that
        cannot render writes nothing, and would keep them (a 1 MiB file, a secret's
        copy) until its next change. -noop removes nothing."""
        if self.mode is Mode.NOOP:
            return
        for base in sorted({common_dir(r.dest for r in u.resources) for u in units if u.resources}):
            remove_stale_stages(base)

    def render(self, unit: Unit, view_for: ViewFor) -> Rendered:
        """Render every file of the unit: CPU work on the key views, no I/O. The daemon
        does it on its event loop, where the views cannot change meanwhile."""
        rendered = Rendered(unit)
        try:
            rendered.texts = self._render(unit, view_for, rendered.steps)
        except _Failed as exc:
            rendered.failure = exc
        except Exception as exc:  # a bug of ours: this unit's failure, never the daemon's
            log.exception("unit %s: unexpected error while rendering", unit.name)
            rendered.failure = _Failed(StepKind.RENDER, f"internal error: {exc!r}")
        return rendered

    def complete(self, rendered: Rendered, cause: Cause | None = None) -> UnitResult:
        """Compare with the disk, stage, check, replace and reload what :meth:`render`
        produced (blocking I/O)."""
        unit, steps = rendered.unit, rendered.steps
        try:
            if rendered.failure is not None:
                raise rendered.failure
            targets = _read_targets(unit, rendered.texts)
            if self.mode is Mode.NOOP:
                result = self._review(unit, targets, steps)
            else:
                result = self._apply(unit, targets, cause or Cause(), steps)
        except _Failed as exc:
            error = self.redact(str(exc))
            log.error("unit %s: %s failed: %s", unit.name, exc.step.value, error, extra={"unit": unit.name})
            result = UnitResult(unit.name, Status.FAILED, failed_step=exc.step, error=error)
        except Exception as exc:  # a bug of ours: this unit's failure, never the daemon's
            log.exception("unit %s: unexpected error", unit.name, extra={"unit": unit.name})
            result = UnitResult(unit.name, Status.FAILED, error=self.redact(f"internal error: {exc!r}"))
        result.steps = steps
        return result

    def _render(self, unit: Unit, view_for: ViewFor, steps: list[Step]) -> list[Text]:
        texts = []
        for r in unit.resources:
            start = time.perf_counter()
            try:
                view = view_for(r)
                text = self.renderer.render(r.src, view, self.node_name)
            except RenderError as exc:
                steps.append(Step(StepKind.RENDER, r.name, False, time.perf_counter() - start))
                raise _Failed(StepKind.RENDER, str(exc)) from None
            try:
                content = text.encode()
            except UnicodeEncodeError:
                steps.append(Step(StepKind.RENDER, r.name, False, time.perf_counter() - start))
                raise _Failed(StepKind.RENDER, f"cannot render {r.src}: {_not_utf8(view)}") from None
            texts.append(Text(r, content, self.redact.holds_secret(text)))
            seconds = time.perf_counter() - start
            steps.append(Step(StepKind.RENDER, r.name, True, seconds))
            log.debug("rendered %s from %d keys in %.1f ms", r.name, len(view), seconds * 1e3,
                      extra={"resource": r.name, "ms": round(seconds * 1e3, 2)})  # fmt: skip
        return texts

    def _checks(self, targets: list[Target], stage: Stage, steps: list[Step]) -> list[CommandResult]:
        results = []
        for t in targets:
            if t.resource.check_cmd:
                cmd = check_command(t.resource.check_cmd, str(stage.paths[t.dest]))
                result = _quoting_lines(run_shell(cmd, t.resource.check_timeout), stage)
                steps.append(Step(StepKind.CHECK, t.resource.name, result.ok, result.seconds))
                if result.ok and result.output.strip():  # a failure's output is in its error
                    log.debug("check of %s said: %s", t.resource.name, self.redact(result.output.strip()))
                results.append(result)
        return results

    def _apply(self, unit: Unit, targets: list[Target], cause: Cause, steps: list[Step]) -> UnitResult:
        changed = [t for t in targets if t.changed]
        marker = pending_marker(unit.name, targets)
        if not changed and not marker.exists():
            return UnitResult(unit.name, Status.IN_SYNC)
        remove_stale_stages(marker.parent)
        if changed:
            self._replace(unit, targets, changed, marker, steps)
            for t in changed:
                extra = {"unit": unit.name, "resource": t.resource.name, "revision": cause.revision}
                log.info("wrote %s (unit %s): %s%s", t.dest, unit.name, _line_counts(t),
                         f"; {cause.text}" if cause.text else "",
                         extra={**extra, "keys": list(cause.keys)} if cause.keys else extra)  # fmt: skip
                if log.isEnabledFor(logging.DEBUG):  # a diff of a big file costs tens of ms
                    log.debug("diff of %s:\n%s", t.dest, self.redact(_diff(t)), extra=extra)
        else:
            log.info("unit %s: files in place, reload still owed from an earlier apply (%s)", unit.name,
                     marker.name, extra={"unit": unit.name})  # fmt: skip
        result = UnitResult(unit.name, Status.APPLIED, [t.dest for t in changed])
        if self.mode is not Mode.SYNC_ONLY:
            for spec in unit.reloads():
                self._reload(unit, spec, steps)
        marker.unlink(missing_ok=True)
        return result

    def _reload(self, unit: Unit, spec: ReloadSpec, steps: list[Step]) -> None:
        outcome = run_reload(spec)
        extra = {"unit": unit.name, "ms": round(outcome.seconds * 1e3, 1)}
        if outcome.absent and not spec.required:
            log.warning("unit %s: nothing to reload (%s): it reads the new files when it starts",
                        unit.name, outcome.detail, extra=extra)  # fmt: skip
            return
        steps.append(Step(StepKind.RELOAD, unit.name, outcome.ok, outcome.seconds))
        if not outcome.ok:
            raise _Failed(StepKind.RELOAD, outcome.summary())
        log.info("unit %s: reloaded: %s", unit.name, outcome.summary(), extra=extra)

    def _replace(
        self, unit: Unit, targets: list[Target], changed: list[Target], marker: Path, steps: list[Step]
    ) -> None:
        try:
            stage = Stage(targets)
        except WriteError as exc:
            raise _Failed(StepKind.WRITE, str(exc)) from None
        try:
            if self.mode is not Mode.SYNC_ONLY:
                failures = [c for c in self._checks(targets, stage, steps) if not c.ok]
                if failures:
                    raise _Failed(StepKind.CHECK, "\n".join(c.summary() for c in failures))
            # The marker records a reload owed or a unit half replaced; one file and no
            # reload can be neither, and its write would cost two more fsyncs per change.
            if len(changed) > 1 or (unit.reloads() and self.mode is not Mode.SYNC_ONLY):
                mark_pending(marker, changed)
            for t in replace_order(changed):
                start = time.perf_counter()
                try:
                    replace(stage.paths[t.dest], t)
                except WriteError as exc:
                    steps.append(Step(StepKind.WRITE, t.resource.name, False, time.perf_counter() - start))
                    raise _Failed(StepKind.WRITE, str(exc)) from None
                steps.append(Step(StepKind.WRITE, t.resource.name, True, time.perf_counter() - start))
        finally:
            if self.keep_stage:
                stage.keep()
                log.info("unit %s: staged files kept in %s", unit.name, stage.dir)
            else:
                stage.remove()

    def _review(self, unit: Unit, targets: list[Target], steps: list[Step]) -> UnitResult:
        changed = [t for t in targets if t.changed]
        if not changed:
            return UnitResult(unit.name, Status.IN_SYNC)
        parts = [f"=== unit {unit.name}: {len(changed)} of {len(targets)} file(s) would change"]
        parts.extend(_diff(t) for t in changed)
        try:
            stage = Stage(targets, root=Path(tempfile.gettempdir()))
        except WriteError as exc:
            raise _Failed(StepKind.WRITE, str(exc)) from None
        try:
            checks = self._checks(targets, stage, steps)
        finally:
            stage.remove()
        parts.extend(f"check {c.summary()}" for c in checks)
        failed = [c for c in checks if not c.ok]
        reloads = "; ".join(spec.describe() for spec in unit.reloads()) or "nothing"
        parts.append("no reload: a check failed" if failed else f"would reload once: {reloads}")
        report = self.redact("\n".join(parts))
        if failed:
            error = self.redact("\n".join(c.summary() for c in failed))
            return UnitResult(
                unit.name, Status.FAILED, failed_step=StepKind.CHECK, error=error, report=report
            )
        return UnitResult(unit.name, Status.WOULD_CHANGE, [t.dest for t in changed], report=report)


_FILE_LINE = re.compile(r"(/[^\s:]+):(\d+)")


def _quoting_lines(result: CommandResult, stage: Stage) -> CommandResult:
    """A failed check's output with the staged lines it points at (``file:line``)
    quoted, so the error shows what the checker refused, not only where."""
    if result.ok:
        return result
    staged = {str(p): p for p in stage.paths.values()}
    quoted: dict[str, None] = {}
    for path, line in _FILE_LINE.findall(result.output):
        if path in staged and len(quoted) < 5:
            lines = staged[path].read_text(errors="replace").splitlines()
            if 0 < int(line) <= len(lines):
                quoted.setdefault(f"  {staged[path].name}:{line}: {lines[int(line) - 1].strip()}", None)
    if not quoted:
        return result
    output = result.output.rstrip("\n") + "\n" + "\n".join(quoted) + "\n"
    return dataclasses.replace(result, output=output)


def _read_targets(unit: Unit, texts: list[Text]) -> list[Target]:
    gid = _secret_group(unit, texts)
    try:
        return [read_target(t.resource, t.content, t.secret, gid) for t in texts]
    except WriteError as exc:
        raise _Failed(StepKind.WRITE, str(exc)) from None


def _secret_group(unit: Unit, texts: list[Text]) -> int | None:
    """The group for files of ``unit`` that hold a secret and have no mode or group of
    their own: the one the daemon that reads them runs as, else their directory's."""
    if not any(t.secret and t.resource.mode is None and t.resource.gid is None for t in texts):
        return None
    for spec in unit.reloads():
        gid = reader_gid(spec)
        if gid is not None:
            return gid
    try:
        return texts[0].resource.dest.parent.stat().st_gid
    except OSError:
        return None


def _not_utf8(view: KeyView) -> str:
    """The keys whose name or value holds bytes that are not UTF-8 (etcd hands them over
    with surrogate escapes), shown escaped."""
    bad = []
    for key, value in view.items_under_full(view.prefix):
        for what, text in (("key", key), ("value", value)):
            try:
                text.encode()
            except UnicodeEncodeError:
                raw = as_bytes(text)[:60]
                bad.append(f"key {printable(key)}: {what} is not UTF-8: {raw!r}")
                break
    return "; ".join(bad) or "the output is not UTF-8"


def _diff(t: Target) -> str:
    old = (t.current or b"").decode(errors="replace").splitlines(keepends=True)
    new = t.content.decode(errors="replace").splitlines(keepends=True)
    label = str(t.dest)
    import difflib  # -noop and debug logs only

    lines = list(difflib.unified_diff(old, new, label if t.current is not None else "/dev/null", label))
    no_eol = "\n\\ No newline at end of file\n"
    text = "".join(line if line.endswith("\n") else line + no_eol for line in lines)
    return text + "".join(f"{t.dest}: {m}\n" for m in t.meta_changes())


def _line_counts(t: Target) -> str:
    """``+3 -1 lines``: lines the new text has that the old has not, and the reverse
    (as multisets: a line moved is not counted; linear, unlike a diff)."""
    old = Counter((t.current or b"").splitlines())
    new = Counter(t.content.splitlines())
    return f"+{(new - old).total()} -{(old - new).total()} lines"
