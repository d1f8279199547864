"""Real answers for the seed corpora: BIRD's control socket (Debian's bird, bird6 and the
BIRD 2 beside them) and etcd (Debian's etcd: the v2 API and the v3 JSON gateway), written
as ``captured-*`` in the corpora of bird_reply, etcdv2_answers and etcd_gateway. Run by
``python -m tests.fuzz.seed --capture``; what is not installed is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fuzz.engine import CORPUS


def _write(harness: str, data: bytes) -> None:
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / f"captured-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)


def _bird_session(ctl: Path, commands: list[str]) -> list[bytes]:
    """What BIRD sends: the greeting, then the reply to each command (raw)."""
    out = []
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(ctl))

        def reply() -> bytes:
            buf = b""
            while True:
                buf += s.recv(65536)
                lines = buf.split(b"\n")
                if any(len(ln) > 4 and ln[:4].isdigit() and ln[4:5] == b" " for ln in lines):
                    return buf

        out.append(reply())
        for c in commands:
            s.sendall(c.encode() + b"\n")
            out.append(reply())
    return out


def capture_bird() -> None:
    from tests.support.bird_daemon import BirdDaemon, bird_binary

    for kind in ("bird", "bird6"):
        if bird_binary(kind) is None:
            print(f"capture: {kind} not installed, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            daemon = BirdDaemon.start(kind, Path(tmp))
            try:
                greeting, *replies = _bird_session(
                    daemon.socket, ["configure", "show status", "show protocols"]
                )
                daemon.config.write_text(daemon.config.read_text() + "\nthis is not bird syntax;\n")
                (bad,) = _bird_session(daemon.socket, ["configure"])[1:]
            finally:
                daemon.stop()
        for r in [*replies, bad]:
            for size in (0, 5):
                _write("bird_reply", bytes([size]) + greeting + r)
        print(f"capture: {kind}: {len(replies) + 1} replies")


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def _v2_record(status: int, headers: dict[str, str], body: bytes) -> bytes:
    return f"{status} {headers.get('x-etcd-index', '')}\n".encode() + body.rstrip(b"\n")


def capture_etcd() -> None:
    from tests.support.etcd_server import EtcdServer

    try:
        server = EtcdServer(enable_v2=True)
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"capture: no etcd ({exc}), skipped")
        return
    try:
        host, port = server.endpoint.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        # v2: Calico 2.x's keys, a recursive read, a watch answered by a put and a delete
        v2 = {
            "/calico/bgp/v1/global/as_num": "64512",
            "/calico/bgp/v1/global/node_mesh": '{"enabled": true}',
            "/calico/bgp/v1/host/node1/ip_addr_v4": "10.0.0.1",
            "/calico/bgp/v1/host/node2/ip_addr_v4": "10.0.0.2",
            "/calico/v1/ipam/v4/pool/192.168.0.0-16": '{"cidr": "192.168.0.0/16", "ipip": "tunl0"}',
        }
        index = server.v2_load(v2)
        records = []
        for prefix in ("/calico/bgp/v1/host", "/calico/bgp/v1/global", "/calico/v1/ipam", "/nothing"):
            records.append(_v2_record(*_get(conn, f"/v2/keys{prefix}?recursive=true&quorum=true")))
        position = _v2_record(*_get(conn, "/v2/keys/calico"))
        server.v2_put("/calico/bgp/v1/host/node1/ip_addr_v4", "10.0.0.9")
        put = _v2_record(*_get(conn, f"/v2/keys/calico?wait=true&recursive=true&waitIndex={index + 1}"))
        server.v2_delete("/calico/bgp/v1/host/node2", recursive=True)
        gone = _v2_record(*_get(conn, f"/v2/keys/calico?wait=true&recursive=true&waitIndex={index + 2}"))
        cleared = _v2_record(*_get(conn, "/v2/keys/calico?wait=true&recursive=true&waitIndex=1"))
        _write("etcdv2_answers", b"\x00".join([*records[:3], position, put, gone]))
        _write("etcdv2_answers", b"\x00".join([*records[:3], position, cleared, *records[:3]]))
        _write("etcdv2_answers", b"\x00".join([records[3], records[3], records[3], position, b"", put]))
        # the v3 JSON gateway: counts, a read, an authentication refused
        for key, value in v2.items():
            server.put(key, value)

        def post(path: str, body: dict[str, Any]) -> bytes:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return str(resp.status).encode() + resp.read()

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        start, end = b64("/calico/bgp/v1"), b64("/calico/bgp/v10")
        count = post("/v3/kv/range", {"key": start, "range_end": end, "count_only": True})
        read = post("/v3/kv/range", {"key": start, "range_end": end})
        empty = post("/v3/kv/range", {"key": b64("/none"), "range_end": b64("/none0"), "count_only": True})
        refused = post("/v3/auth/authenticate", {"name": "root", "password": "x"})
        compacted = post("/v3/kv/range", {"key": start, "range_end": end, "revision": 1})
        _write("etcd_gateway", bytes([0]) + b"\x00".join([count, read]))
        _write("etcd_gateway", bytes([2]) + b"\x00".join([empty]))
        _write("etcd_gateway", bytes([1]) + b"\x00".join([refused]))
        _write("etcd_gateway", bytes([0]) + b"\x00".join([count, compacted, count, read]))
        _write("etcd_gateway", bytes([4]) + b"\x00".join([count, count, read, read]))
        print("capture: etcd v2 and gateway answers")
    finally:
        server.stop()
        time.sleep(0.1)


def capture() -> None:
    capture_bird()
    capture_etcd()
