"""The etcd store's watch: one watcher per prefix on one watch stream, each transaction
handed on whole at its revision.

Watching only the prefixes the resources read (not one range from the lowest to the
highest) keeps the cluster's other churn (Felix's workload endpoints, IPAM
assignments) off the wire. The price: etcd sends each watcher's events of a revision
in a response of its own. It pushes the responses of one revision back to back, so
they are gathered here until the stream has been quiet for :data:`SETTLE`; a stream
that never goes quiet releases every revision older than the newest one it has seen
after :data:`MAX_HOLD`. A process starved of CPU can still see one revision's parts
more than :data:`SETTLE` apart: the late part then follows as a batch of its own at the
same revision, and the files converge.

Each batch comes with the revision a new watch may resume after: the newest released
at a quiet moment. After a forced release, a late response of another watcher could
still be on its way, so a reconnect replays from the last quiet one: the cache drops a
change it already has, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence

from confpy.keys import covered_by_any
from confpy.stores.base import Change, Changes, Lost, Refused
from confpy.stores.etcd_transport import Compacted, WatchQueue

#: Quiet time after which the revisions gathered so far are complete.
SETTLE = 0.005
#: The longest a revision is held while the stream keeps talking.
MAX_HOLD = 0.02


class Reassembler:
    """Changes of several watchers gathered by revision, released in revision order."""

    def __init__(self) -> None:
        self._by_revision: dict[int, list[Change]] = {}
        self.since = 0.0  # when the oldest gathered change arrived (monotonic)

    def __bool__(self) -> bool:
        return bool(self._by_revision)

    def add(self, revision: int, changes: Sequence[Change], now: float) -> None:
        if not self._by_revision:
            self.since = now
        self._by_revision.setdefault(revision, []).extend(changes)

    def take(self, below: int | None = None) -> list[Changes]:
        """The gathered revisions (those below ``below`` only, if given), oldest first."""
        ready = sorted(r for r in self._by_revision if below is None or r < below)
        # One key changes at most once in a revision (etcd refuses a transaction naming a
        # key twice), so key order is as good as etcd's and the same whatever the watcher.
        out = [Changes(r, tuple(sorted(self._by_revision.pop(r), key=lambda c: c.key))) for r in ready]
        if self._by_revision and out:
            self.since = time.monotonic()
        return out

    @property
    def newest(self) -> int:
        return max(self._by_revision, default=0)


async def follow(
    responses: WatchQueue, watchers: int, wanted: Sequence[str], start: int, create_timeout: float
) -> AsyncIterator[tuple[Changes, int]]:
    """Changes under ``wanted`` from revision ``start`` on, one batch per revision, from
    the answers of ``watchers`` watchers put on ``responses`` (an exception put there
    is raised), each batch with the revision after which a new watch may resume.
    Raises :class:`Compacted`, :class:`Lost` or :class:`Refused`."""
    pending = Reassembler()
    safe = start - 1
    created = 0
    stretched = 0  # quiet periods waited again because the process was descheduled
    deadline = time.monotonic() + create_timeout
    while True:
        if created == watchers and pending and time.monotonic() - pending.since >= MAX_HOLD:
            # Never quiet: what is older than the newest revision seen is complete.
            for batch in pending.take(below=pending.newest):
                yield batch, safe
        if not responses.empty():
            resp = responses.get_nowait()
        else:
            wait: float | None
            if created < watchers:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise Lost("etcd did not create the watch in time")
            else:
                wait = SETTLE if pending else None
            waited = time.monotonic()
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the
                # response when a cancel comes as it arrives, and the watch went on.
                async with asyncio.timeout(wait):
                    resp = await responses.get()
            except TimeoutError:
                late = time.monotonic() - waited > 2 * SETTLE and stretched < 3
                await asyncio.sleep(0)  # a response the reader has in hand is not "quiet"
                if late:  # this process was not running: the quiet was not ours to see
                    stretched += 1
                    continue
                if created == watchers and responses.empty():
                    batches = pending.take()
                    safe = batches[-1].revision if batches else safe
                    for batch in batches:
                        yield batch, safe
                continue
            stretched = 0
        if isinstance(resp, BaseException):
            raise resp
        if resp.created:
            created += 1
            if resp.canceled:
                why = f"etcd refused the watch: {resp.cancel_reason}"
                raise (Refused if "permission denied" in why else Lost)(why)
            continue
        if resp.compact_revision:
            raise Compacted(resp.compact_revision)
        if resp.canceled:
            raise Lost(f"etcd cancelled the watch: {resp.cancel_reason}")
        arrived = time.monotonic()
        for rev, group in itertools.groupby(resp.events, lambda ev: ev[0]):
            # The ranges also hold siblings of the prefixes, such as K-b for K/.
            changes = [Change(key, value) for _, key, value in group if covered_by_any(wanted, key)]
            if changes:
                pending.add(rev, changes, arrived)
