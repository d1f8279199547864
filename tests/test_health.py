"""Health and the metrics that describe the store, with stores standing still in time."""

from __future__ import annotations

import time

from confpy.health import Health
from confpy.stores.memory import MemoryStore


class LostStore(MemoryStore):
    """A store that was lost ``ago`` seconds ago."""

    def __init__(self, ago: float | None) -> None:
        super().__init__()
        self._since = None if ago is None else time.monotonic() - ago

    @property
    def connected_to(self) -> str | None:
        return None if self._since is not None else "memory"

    @property
    def down_since(self) -> float | None:
        return self._since


def test_health_counts_from_the_loss_of_the_store_not_from_the_first_probe() -> None:
    assert Health(LostStore(None)).healthy()
    assert Health(LostStore(10.0), budget=120).healthy()
    # First asked 136 s into an outage: already unhealthy.
    assert not Health(LostStore(136.0), budget=120).healthy()


def test_store_connected_keeps_each_endpoints_label_while_none_answers() -> None:
    from prometheus_client import generate_latest

    from confpy.status import Board
    from confpy.stores.etcd import EtcdStore

    store = EtcdStore(["http://127.0.0.1:1", "127.0.0.1:2"])  # never connected
    text = generate_latest(Board(store).registry).decode()
    assert 'confpy_store_connected{endpoint="http://127.0.0.1:1"} 0.0' in text
    assert 'confpy_store_connected{endpoint="127.0.0.1:2"} 0.0' in text
    assert 'endpoint=""' not in text
    assert "confpy_seconds_since_sync" in text and "confpy_store_revision 0.0" in text
