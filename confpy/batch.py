"""The pending batch: units with changes not yet applied, and when they are due.

The quiet window of -watch: changes are collected until the store has been quiet for
``wait_min`` seconds, or ``wait_max`` seconds have passed since the first change not
yet applied, whichever comes first. A burst of puts becomes one render and one reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PendingBatch:
    units: dict[str, set[str]] = field(default_factory=dict)  # unit -> the keys that changed
    first_change: float | None = None
    last_change: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.units)

    def __contains__(self, unit: str) -> bool:
        return unit in self.units

    def add(self, unit: str, keys: set[str], now: float) -> None:
        """``unit`` has changes (``keys``; empty: re-render it anyway), seen at ``now``."""
        self.units.setdefault(unit, set()).update(keys)
        if self.first_change is None:
            self.first_change = now
        self.last_change = now

    def add_due_now(self, units: list[str], now: float, wait_max: float) -> None:
        """``units`` are to be applied at the next look, without a quiet window (SIGHUP)."""
        for unit in units:
            self.units.setdefault(unit, set())
        self.first_change = self.last_change = now - wait_max

    def due(self, wait_min: float, wait_max: float) -> float | None:
        """When the batch is to be applied (a ``time.monotonic()`` value); None when empty."""
        if not self.units or self.first_change is None:
            return None
        return min(self.last_change + wait_min, self.first_change + wait_max)

    def take(self) -> dict[str, set[str]]:
        """The units and their keys, leaving the batch empty."""
        units, self.units, self.first_change = self.units, {}, None
        return units
