"""Is the daemon healthy? Connected to its store, or lost it for less than the retry budget."""

from __future__ import annotations

import time

from confpy.stores.base import Store

HEALTH_BUDGET = 120.0  # seconds without the store before the daemon counts as unhealthy


class Health:
    def __init__(self, store: Store, budget: float = HEALTH_BUDGET) -> None:
        self.store = store
        self.budget = budget
        self._down_since: float | None = None

    def healthy(self) -> bool:
        if self.store.connected_to is not None:
            self._down_since = None
            return True
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        return now - self._down_since < self.budget
