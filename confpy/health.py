"""Is the daemon healthy? Connected to its store, or lost it less than the retry budget ago.

The budget counts from the moment the store was lost (or first tried and not reached),
as the store itself records it, not from the first time someone asked.
"""

from __future__ import annotations

import time

from confpy.stores.base import Store

HEALTH_BUDGET = 120.0  # seconds without the store before the daemon counts as unhealthy


class Health:
    def __init__(self, store: Store, budget: float = HEALTH_BUDGET) -> None:
        self.store = store
        self.budget = budget

    def healthy(self) -> bool:
        down_since = self.store.down_since
        return down_since is None or time.monotonic() - down_since < self.budget
