"""What the daemon is doing, for operators: Prometheus metrics, health, readiness and
per-resource status, served over HTTP when ``--metrics-addr`` is given.

- ``/metrics``: Prometheus text.
- ``/healthz``: 200 while the store is connected or has been lost for less than the
  retry budget; 503 after that.
- ``/readyz``: 200 once the first full snapshot has been applied.
- ``/status``: JSON, one entry per resource: last revision, last result of each step,
  last error (secrets masked), next retry; the store revision read and the units with
  changes not yet applied (``pending``: in the quiet window or being applied).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from confpy.apply import UnitResult
from confpy.health import Health
from confpy.resource import Unit
from confpy.stores.base import Store

log = logging.getLogger("confpy.status")


class _StoreCollector(Collector):
    def __init__(self, board: Board) -> None:
        self.board = board

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connected = GaugeMetricFamily(
            "confpy_store_connected",
            "1 for the store endpoint confpy is connected to now, 0 for each other one",
            labels=["endpoint"],
        )
        now = self.board.store.connected_to
        for endpoint in self.board.store.endpoints:
            connected.add_metric([endpoint], 1.0 if endpoint == now else 0.0)
        yield connected


class Board:
    """Counters, gauges and the per-resource status table, updated by the daemon."""

    def __init__(self, store: Store, health: Health | None = None) -> None:
        self.store = store
        self.health = health or Health(store)
        self.registry = CollectorRegistry()
        r = self.registry
        self.steps = Counter(
            "confpy_steps", "renders, checks, writes and reloads", ["step", "name"], registry=r
        )
        self.failures = Counter("confpy_step_failures", "failed steps", ["step", "name"], registry=r)
        self.seconds = Histogram(
            "confpy_step_seconds", "duration of each step", ["step"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )  # fmt: skip
        self.revision = Gauge(
            "confpy_store_revision", "the latest store revision confpy has read", registry=r
        )
        self.failing = Gauge("confpy_resources_failing", "resources whose last apply failed", registry=r)
        Gauge(
            "confpy_seconds_since_sync",
            "seconds the files have been out of step with the store; 0 while every unit applied cleanly",
            registry=r,
        ).set_function(
            lambda: 0.0 if self.out_of_sync_since is None else time.monotonic() - self.out_of_sync_since
        )
        r.register(_StoreCollector(self))
        self.ready = False
        #: Units with changes collected or an apply running (published by the daemon).
        self.pending: tuple[str, ...] = ()
        self.applied_revision = 0
        self.store_revision = 0
        #: Since when (monotonic) some unit has failed, or none has applied yet; None: in sync.
        self.out_of_sync_since: float | None = time.monotonic()
        self._lock = threading.Lock()
        self._table: dict[str, dict[str, Any]] = {}
        self._units: set[str] = set()

    def record(self, unit: Unit, result: UnitResult, revision: int, next_retry: float | None) -> None:
        for step in result.steps:
            self.steps.labels(step.kind.value, step.name).inc()
            self.seconds.labels(step.kind.value).observe(step.seconds)
            if not step.ok:
                self.failures.labels(step.kind.value, step.name).inc()
        now = time.time()
        with self._lock:
            for r in unit.resources:
                entry = self._table.setdefault(r.name, {"dest": str(r.dest), "unit": unit.name})
                entry["revision"] = revision
                entry["result"] = result.status.value
                entry["time"] = now
                entry["steps"] = {s.kind.value: s.ok for s in result.steps if s.name in (r.name, unit.name)}
                entry["error"] = result.error or None
                entry["failed_step"] = result.failed_step.value if result.failed_step else None
                entry["next_retry"] = next_retry
            failing = sum(1 for e in self._table.values() if e["result"] == "failed")
            self.failing.set(failing)
            if failing == 0 and self._units <= {e["unit"] for e in self._table.values()}:
                self.out_of_sync_since = None
            elif self.out_of_sync_since is None:
                self.out_of_sync_since = time.monotonic()
        if result.ok:
            self.applied_revision = revision

    def expect_units(self, names: list[str]) -> None:
        """The units the daemon keeps: in sync once each has applied without failing."""
        with self._lock:
            self._units = set(names)

    def observe_revision(self, revision: int) -> None:
        """The store revision read (a snapshot, a watch batch), whatever the applies did."""
        self.store_revision = revision
        self.revision.set(revision)

    def status(self) -> dict[str, Any]:
        with self._lock:
            resources = {name: dict(entry) for name, entry in sorted(self._table.items())}
        return {
            "ready": self.ready,
            "healthy": self.healthy(),
            "store": self.store.connected_to,
            "store_revision": self.store_revision,
            "revision": self.applied_revision,
            "pending": list(self.pending),
            "resources": resources,
        }

    def healthy(self) -> bool:
        return self.health.healthy()


def serve(board: Board, address: str) -> Callable[[], None]:
    """Serve /metrics, /healthz, /readyz and /status on ``host:port``; returns a stopper."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(board.registry), "text/plain; version=0.0.4")
            elif path == "/healthz":
                ok = board.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"store lost beyond the retry budget\n")
            elif path == "/readyz":
                ok = board.ready
                self._send(200 if ok else 503, b"ready\n" if ok else b"first snapshot not applied yet\n")
            elif path == "/status":
                self._send(200, json.dumps(board.status(), indent=2).encode() + b"\n", "application/json")
            else:
                self._send(404, b"not found: try /metrics, /healthz, /readyz or /status\n")

        def _send(self, code: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="confpy-http", daemon=True).start()
    log.info("serving /metrics, /healthz, /readyz, /status on http://%s", address)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
