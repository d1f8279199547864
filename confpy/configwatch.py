"""--watch-config: notice edits to conf.d and templates (watchdog) and ask for a reload,
the same validated reload SIGHUP gives."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("confpy.configwatch")


class _Handler(FileSystemEventHandler):
    def __init__(self, changed: Callable[[], None]) -> None:
        self.changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        log.debug("config change: %s %s", event.event_type, event.src_path)
        self.changed()


def watch_config(confdir: Path, changed: Callable[[], None]) -> Callable[[], None]:
    """Watch ``confdir/conf.d`` and ``confdir/templates``; returns a stopper."""
    observer = Observer()
    handler = _Handler(changed)
    for sub in ("conf.d", "templates"):
        if (confdir / sub).is_dir():
            observer.schedule(handler, str(confdir / sub), recursive=True)
    observer.daemon = True
    observer.start()
    log.info("watching %s/conf.d and %s/templates for changes", confdir, confdir)

    def stop() -> None:
        observer.stop()
        observer.join(5)

    return stop
