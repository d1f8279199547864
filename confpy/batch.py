"""The pending batch: units with changes not yet applied, and when they are due.

The quiet window of -watch: changes are collected until the store has been quiet for
``wait_min`` seconds, or ``wait_max`` seconds have passed since the first change not
yet applied, whichever comes first. A burst of puts becomes one render and one reload.
A unit whose apply is still running stays pending until it is done (one apply at a
time per unit); the others go ahead.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field

#: Changed keys and the store revision at which each was seen.
Keys = dict[str, int]


@dataclass
class PendingBatch:
    units: dict[str, Keys] = field(default_factory=dict)
    first_change: float | None = None
    last_change: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.units)

    def __contains__(self, unit: str) -> bool:
        return unit in self.units

    def add(self, unit: str, keys: Mapping[str, int], now: float) -> None:
        """``unit`` has changes (``keys``; empty: re-render it anyway), seen at ``now``."""
        self.units.setdefault(unit, {}).update(keys)
        if self.first_change is None:
            self.first_change = now
        self.last_change = now

    def add_due_now(self, units: list[str], now: float, wait_max: float) -> None:
        """``units`` are to be applied at the next look, without a quiet window (SIGHUP)."""
        for unit in units:
            self.units.setdefault(unit, {})
        self.first_change = self.last_change = now - wait_max

    def due(self, wait_min: float, wait_max: float, busy: Container[str] = ()) -> float | None:
        """When the batch is to be applied (a ``time.monotonic()`` value); None when
        nothing is pending but units still ``busy`` with an apply."""
        if self.first_change is None or all(u in busy for u in self.units):
            return None
        return min(self.last_change + wait_min, self.first_change + wait_max)

    def take(self, busy: Container[str] = ()) -> dict[str, Keys]:
        """The units not ``busy`` and their keys; the busy ones stay pending."""
        taken = {u: k for u, k in self.units.items() if u not in busy}
        self.units = {u: k for u, k in self.units.items() if u in busy}
        if not self.units:
            self.first_change = None
        return taken
