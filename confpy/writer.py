"""Putting files in place: compare with disk, stage, replace atomically.

A reader of a destination sees the old file or the new one, never a torn or unchecked
one: new text is staged in a private directory beside the destinations (created
exclusively, mode 0700, nothing in it followed through a link), checked there, then
renamed over the destination and the directory fsynced.

A unit with several files is replaced file by file (includes first, the checked main
files last) between a *pending* marker written before the first rename and removed
after the reload. If the machine dies between two renames, the next run finds the
marker, renders again, replaces what still differs and reloads once.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confpy.resource import TemplateResource

NEW_FILE_MODE = 0o644
#: A file holding a secret: its owner (root) writes it, the group of the daemon that
#: reads it may read it, nobody else.
SECRET_FILE_MODE = 0o640
STAGE_PREFIX = ".confpy-stage-"
PENDING_PREFIX = ".confpy-pending-"


class WriteError(OSError):
    """A destination could not be staged or replaced; names the path."""


@dataclass
class Target:
    """One resource's rendered file next to what is on disk now."""

    resource: TemplateResource
    content: bytes
    mode: int
    uid: int | None  # None: leave ownership as the process creates it / as it is
    gid: int | None
    current: bytes | None  # None: the destination does not exist
    current_mode: int | None = None
    current_uid: int | None = None
    current_gid: int | None = None

    @property
    def dest(self) -> Path:
        return self.resource.dest

    @property
    def content_changed(self) -> bool:
        return self.current != self.content

    def meta_changes(self) -> list[str]:
        """What differs besides the text, e.g. ``mode 0600 -> 0644``."""
        if self.current is None:
            return []
        out = []
        if self.current_mode != self.mode:
            out.append(f"mode {self.current_mode or 0:04o} -> {self.mode:04o}")
        if self.uid is not None and self.current_uid != self.uid:
            out.append(f"uid {self.current_uid} -> {self.uid}")
        if self.gid is not None and self.current_gid != self.gid:
            out.append(f"gid {self.current_gid} -> {self.gid}")
        return out

    @property
    def changed(self) -> bool:
        return self.content_changed or bool(self.meta_changes())


def read_target(
    resource: TemplateResource, content: bytes, secret: bool = False, secret_gid: int | None = None
) -> Target:
    """Compare ``content`` with the destination: bytes, mode and owner.

    Without a ``mode`` in the resource a file keeps its mode (0644 when new), except
    that a file holding a secret is 0640, in group ``secret_gid`` unless the resource
    names a group.
    """
    dest = resource.dest
    default_mode = SECRET_FILE_MODE if secret else None
    gid = secret_gid if secret and resource.gid is None else resource.gid
    try:
        st = os.stat(dest)
        current: bytes | None = dest.read_bytes() if stat.S_ISREG(st.st_mode) else b""
    except FileNotFoundError:
        mode = resource.mode or default_mode or NEW_FILE_MODE
        return Target(resource, content, mode, resource.uid, gid, None)
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot read {dest}: {exc.strerror}") from None
    mode = resource.mode or default_mode or stat.S_IMODE(st.st_mode)
    return Target(
        resource, content, mode, resource.uid, gid,
        current, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
    )  # fmt: skip


def common_dir(paths: Iterable[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


#: Stage directories of this process in use or kept on purpose (-keep-stage-file):
#: :func:`remove_stale_stages` leaves them; any other of ours is a leftover.
_OURS: set[Path] = set()
_OURS_LOCK = threading.Lock()


class Stage:
    """A private directory holding a unit's new files at their relative places,
    so a check of the main file finds its includes beside it.

    A stage that cannot be written whole (a full disk) removes everything it made
    before raising: a failed attempt never leaves a partial file to fill the disk.
    """

    def __init__(self, targets: Sequence[Target], root: Path | None = None) -> None:
        self.base = common_dir(t.dest for t in targets)
        for t in targets:
            if not t.dest.parent.is_dir():
                raise WriteError(errno.ENOENT, f"destination directory {t.dest.parent} does not exist")
        where = root or self.base
        with _OURS_LOCK:
            try:
                self.dir = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=where))
            except OSError as exc:
                raise WriteError(exc.errno, f"cannot stage in {where}: {exc.strerror}") from None
            _OURS.add(self.dir)
        self.paths: dict[Path, Path] = {}
        try:
            for t in targets:
                self.paths[t.dest] = self._write(t)
        except BaseException:
            self.remove()
            raise

    def _write(self, t: Target) -> Path:
        path = self.dir / t.dest.relative_to(self.base)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_new_file(path, t.content, t.mode, t.uid, t.gid)
        except OSError as exc:
            raise WriteError(exc.errno, f"cannot stage {t.dest} at {path}: {exc.strerror}") from None
        return path

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with _OURS_LOCK:
            _OURS.discard(self.dir)

    def keep(self) -> None:
        """Leave the stage on disk for a person to look at (-keep-stage-file)."""
        with _OURS_LOCK:
            _OURS.add(self.dir)


def write_new_file(path: Path, content: bytes, mode: int, uid: int | None, gid: int | None) -> None:
    """Create ``path`` exclusively (never through a planted link), write, set mode/owner,
    fsync. A file that could not be written whole is removed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, content)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def replace(staged: Path, target: Target) -> None:
    """Rename the staged file over the destination, atomically, and fsync the directory.

    Falls back to a copy beside the destination when the stage is on another file
    system, and to writing in place when the destination is a bind-mounted file (EBUSY).
    """
    dest = target.dest
    try:
        try:
            os.replace(staged, dest)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                _replace_across_devices(target)
            elif exc.errno == errno.EBUSY:
                _write_in_place(target)
            else:
                raise
        fsync_dir(dest.parent)
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot replace {dest}: {exc.strerror}") from None


def _replace_across_devices(target: Target) -> None:
    tmp = Path(tempfile.mktemp(prefix=f".{target.dest.name}.confpy-", dir=target.dest.parent))
    write_new_file(tmp, target.content, target.mode, target.uid, target.gid)
    try:
        os.replace(tmp, target.dest)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:  # os.write may write less than it was given
        view = view[os.write(fd, view) :]


def _write_in_place(target: Target) -> None:
    # A bind-mounted file cannot be renamed over; readers may see a partial write here.
    fd = os.open(target.dest, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        _write_all(fd, target.content)
        os.fchmod(fd, target.mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_order(targets: Iterable[Target]) -> list[Target]:
    """Files without a check (the includes) before the checked files that include them."""
    return sorted(targets, key=lambda t: t.resource.check_cmd is not None)


def pending_marker(unit_name: str, targets: Sequence[Target]) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in unit_name)
    return common_dir(t.dest for t in targets) / f"{PENDING_PREFIX}{safe}"


def mark_pending(marker: Path, targets: Sequence[Target]) -> None:
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.unlink(missing_ok=True)
    write_new_file(tmp, "".join(f"{t.dest}\n" for t in targets).encode(), 0o600, None, None)
    os.replace(tmp, marker)
    fsync_dir(marker.parent)


def remove_stale_stages(base: Path) -> None:
    """Remove the stage directories left in ``base`` by a confpy process that is gone
    (killed mid-apply), and this process's own that are neither in use nor kept."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    me = os.getpid()
    for entry in entries:
        if not entry.name.startswith(STAGE_PREFIX) or not entry.is_dir() or entry.is_symlink():
            continue
        pid_text = entry.name[len(STAGE_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        with _OURS_LOCK:
            stale = entry not in _OURS if pid == me else not _alive(pid)
            if stale:
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
