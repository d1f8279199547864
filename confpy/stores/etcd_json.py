"""etcd's v3 API in the JSON form its gateway serves on the client port: keys and
values in base64, the API's root path, the message of an error. Shared by the one-shot
reader (etcd_gateway.py, synchronous) and the store's HTTP transport (etcd_http.py).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from confpy.keys import as_text

#: Where the gateway serves the API: ``/v3``, and ``/v3beta`` on etcd 3.3 and older
#: (the one-shot reader tries both; the daemon speaks gRPC to an etcd without ``/v3``).
API_ROOTS = ("/v3", "/v3beta")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def text(encoded: str) -> str:
    """A key or value as the gateway sends it (base64), decoded by :func:`as_text`."""
    return as_text(base64.b64decode(encoded))


def range_body(start: bytes, end: bytes, revision: int, *, count_only: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(start), "range_end": b64(end), "revision": revision}
    if count_only:
        body["count_only"] = True
    return body


def kvs(answer: Any) -> list[tuple[str, str]]:
    """The keys and values of a range answer."""
    return [(text(kv["key"]), text(kv.get("value", ""))) for kv in answer.get("kvs", ())]


def error_message(body: bytes) -> str:
    """What etcd said in an answer that is not 200 (its JSON ``message``, else the body)."""
    try:
        answer = json.loads(body)
        return str(answer.get("message") or answer.get("error") or answer)
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")
