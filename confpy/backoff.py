"""Exponential backoff with jitter: one policy object for every retry loop.

The daemon's store retries, its per-unit retries and the etcd client's reconnects all
use it, each with its own first delay and cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``first``, ``2 * first``, ... up to ``cap`` seconds.

    ``jitter`` spreads each delay over its upper half, so the watchers of many nodes
    that lost the same store do not come back in lockstep.
    """

    first: float
    cap: float
    jitter: bool = True
    attempts: int = field(default=0, init=False)

    def delay(self, attempt: int) -> float:
        """The delay after the ``attempt``-th failure in a row (1 is the first), no jitter."""
        return min(self.first * 2.0 ** max(attempt - 1, 0), self.cap)

    def next(self) -> float:
        """Count one more failure; the delay to wait before the next try."""
        self.attempts += 1
        wait = self.delay(self.attempts)
        return wait * random.uniform(0.5, 1.0) if self.jitter else wait

    def reset(self) -> None:
        """A try succeeded: the next failure starts from ``first`` again."""
        self.attempts = 0

    async def sleep(self) -> None:
        import asyncio  # the daemon's; the one-shot modes wait with time.sleep

        await asyncio.sleep(self.next())
