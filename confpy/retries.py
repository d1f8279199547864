"""The retry book: units whose last apply failed, when each is tried again, and the
changes each still owes its log lines.

A failed check, write or reload is retried with backoff (1 s doubling to 60 s). A
failed render (bad data, a template bug) waits for a change of its keys or its
templates: retrying the same input would fail the same way. Any change a unit reads
retries it at once, whatever its timer says.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from dataclasses import dataclass, field

from confpy.backoff import Backoff
from confpy.batch import Keys

RETRY_FIRST, RETRY_CAP = 1.0, 60.0


@dataclass
class _Entry:
    attempts: int = 0
    due: float = math.inf  # a time.monotonic() value; inf: only a change retries it
    keys: Keys = field(default_factory=dict)  # changes not yet applied, for the next log line


class RetryBook:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff(RETRY_FIRST, RETRY_CAP, jitter=False)
        self._entries: dict[str, _Entry] = {}

    def __contains__(self, unit: str) -> bool:
        return unit in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def failed(self, unit: str, keys: Keys, now: float, *, wait_for_change: bool) -> float | None:
        """Record a failure; the seconds until its retry, or None when only a change retries it."""
        entry = self._entries.setdefault(unit, _Entry())
        entry.keys.update(keys)
        entry.attempts += 1
        if wait_for_change:
            entry.due = math.inf
            return None
        wait = self.backoff.delay(entry.attempts)
        entry.due = now + wait
        return wait

    def attempts(self, unit: str) -> int:
        entry = self._entries.get(unit)
        return entry.attempts if entry else 0

    def succeeded(self, unit: str) -> None:
        self._entries.pop(unit, None)

    def take_keys(self, unit: str) -> Keys:
        """A change came for ``unit``: it is retried with it now. The keys it still owes."""
        entry = self._entries.pop(unit, None)
        return entry.keys if entry else {}

    def due(self, now: float, busy: Container[str] = ()) -> list[str]:
        """The units to retry now (not those ``busy`` with an apply already)."""
        return [name for name, e in self._entries.items() if e.due <= now and name not in busy]

    def next_due(self, busy: Container[str] = ()) -> float | None:
        times = [e.due for name, e in self._entries.items() if e.due != math.inf and name not in busy]
        return min(times) if times else None

    def clear(self) -> None:
        self._entries.clear()
