"""etcd's v3 API as JSON over HTTP/1.1, through the gateway etcd serves on its client
port: the same calls as gRPC without a gRPC stack to load (about 50 ms and 16 MiB of
a daemon's memory). Keys and values travel base64-encoded.

A watch is one ``POST /v3/watch`` whose body holds one create request per range: etcd
runs them as watchers on one stream and answers with one JSON object per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from confpy.stores.base import Lost, Refused
from confpy.stores.endpoints import Access, Endpoint
from confpy.stores.etcd_json import b64, error_message, kvs, range_body, text
from confpy.stores.etcd_transport import Compacted, NoGateway, Status, WatchQueue, WatchResponse, pump
from confpy.stores.http_client import HttpClient
from confpy.stores.http_wire import Response

log = logging.getLogger("confpy.etcd")

# A range read grows with the data, so its deadline is generous; a dead or frozen
# member is caught sooner by the store's heartbeat.
_REQUEST_TIMEOUT = 30.0
# Makes etcd end the watch when its member loses the leader (as etcd's own client
# does); the gateway hands Grpc-Metadata-* headers on as gRPC metadata.
_REQUIRE_LEADER = {"Grpc-Metadata-Hasleader": "true"}


class HttpTransport:
    """The v3 API over etcd's JSON gateway (see etcd_transport.Transport)."""

    def __init__(self, endpoints: Sequence[Endpoint], access: Access) -> None:
        self._http = HttpClient(endpoints, access, label="etcd", log=log)
        self.connect_timeout = access.connect_timeout
        self.closed = self._http.closed
        self._credentials = (
            None if access.username is None else {"name": access.username, "password": access.password}
        )
        self._token: str | None = None

    @property
    def connected_to(self) -> str | None:
        return self._http.connected_to

    @property
    def endpoints(self) -> list[str]:
        return [ep.url for ep in self._http.endpoints]

    @property
    def down_since(self) -> float | None:
        return self._http.down_since

    def _endpoint(self, url: str) -> Endpoint:
        return next(ep for ep in self._http.endpoints if ep.url == url)

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **({"Authorization": self._token} if self._token else {})}

    # -- requests -------------------------------------------------------------------
    async def _call(self, path: str, body: dict[str, Any], timeout: float = _REQUEST_TIMEOUT) -> Any:
        """``POST /v3<path>`` with a JSON body on the endpoint that answers; its JSON."""
        if self._credentials is not None and self._token is None:
            await self._authenticate()
        try:
            return await self._answer(path, body, timeout)
        except Refused as exc:
            if self._credentials is None or "invalid auth token" not in str(exc):
                raise
        self._token = None  # expired (etcd's simple tokens live 5 minutes idle): once more
        await self._authenticate()
        return await self._answer(path, body, timeout)

    def _where(self) -> str:
        return self._http.current.url if self._http.current else "etcd"

    async def _post(self, path: str, body: dict[str, Any], timeout: float, *, auth: bool = True) -> Response:
        """``POST /v3<path>`` on the endpoint that answers; the response. etcd 3.3 and
        older serve only ``/v3beta``: gRPC then (the store's switch on NoGateway)."""
        headers = self._headers() if auth else None
        data = json.dumps(body).encode()
        response = await self._http.request("POST", "/v3" + path, timeout, body=data, headers=headers)
        assert response is not None  # not a long poll
        if response.status == 404:
            raise NoGateway(f"etcd at {self._where()} serves no JSON gateway (HTTP 404 for /v3{path})")
        return response

    async def _answer(self, path: str, body: dict[str, Any], timeout: float) -> Any:
        response = await self._post(path, body, timeout)
        if response.status != 200:
            message = error_message(response.body)
            if "compacted" in message:
                raise Compacted()
            raise Refused(f"etcd at {self._where()} refused {path}: {message}")
        return response.json()

    async def _authenticate(self) -> None:
        assert self._credentials is not None
        response = await self._post("/auth/authenticate", self._credentials, self.connect_timeout, auth=False)
        if response.status == 200:
            self._token = str(response.json().get("token") or "") or None
            return
        message = error_message(response.body)
        if "not enabled" in message:  # as etcd's own client: credentials for an etcd without auth
            return
        raise Refused(f"etcd at {self._where()} refused user {self._credentials['name']!r}: {message}")

    async def status(self) -> Status:
        for _ in self._http.endpoints:
            answer = await self._call("/maintenance/status", {}, self.connect_timeout)
            header = answer.get("header") or {}
            if int(answer.get("leader") or 0):
                return Status(
                    self._where(), int(header.get("revision") or 0), int(header.get("cluster_id") or 0)
                )
            if self._http.current is not None:  # a member without a leader is not used
                self._http.failed(self._http.current, "member has no leader")
        raise Lost("no etcd member with a leader answered")

    async def heartbeat(self, url: str, timeout: float) -> None:
        response = await self._http.ask(
            self._endpoint(url),
            "POST",
            "/v3/maintenance/status",
            timeout,
            b"{}",
            self._headers(),
        )
        if response.status != 200 or not int(response.json().get("leader") or 0):
            raise Lost("member has no leader")

    async def range(self, start: bytes, end: bytes, revision: int) -> tuple[int, list[tuple[str, str]]]:
        answer = await self._call("/kv/range", range_body(start, end, revision))
        return int(answer["header"]["revision"]), kvs(answer)

    # -- watch ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watch(
        self, url: str, ranges: Sequence[tuple[bytes, bytes]], start: int
    ) -> AsyncIterator[WatchQueue]:
        creates = b"".join(
            json.dumps(
                {"create_request": {"key": b64(k), "range_end": b64(e), "start_revision": start}}
            ).encode()
            for k, e in ranges
        )
        queue: WatchQueue = asyncio.Queue()
        headers = {**self._headers(), **_REQUIRE_LEADER}
        async with self._http.stream(self._endpoint(url), "POST", "/v3/watch", creates, headers) as lines:
            reader = asyncio.create_task(pump(_answers(lines), queue))
            try:
                yield queue
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)

    async def failed(self, url: str, why: str) -> None:
        self._http.failed(self._endpoint(url), why)

    def mark_unreachable(self, why: object) -> None:
        self._http.mark_unreachable(why)

    async def close(self) -> None:
        await self._http.close()


async def _answers(lines: AsyncIterator[bytes]) -> AsyncIterator[WatchResponse]:
    async for line in lines:
        answer = json.loads(line)
        if "result" not in answer:
            error = answer.get("error") or answer
            raise Lost(f"etcd ended the watch: {error.get('message') or error}")
        r = answer["result"]
        yield WatchResponse(
            created=bool(r.get("created")),
            canceled=bool(r.get("canceled")),
            cancel_reason=str(r.get("cancel_reason") or ""),
            compact_revision=int(r.get("compact_revision") or 0),
            events=tuple(
                (
                    int(ev["kv"]["mod_revision"]),
                    text(ev["kv"]["key"]),
                    None if ev.get("type") == "DELETE" else text(ev["kv"].get("value", "")),
                )
                for ev in r.get("events") or ()
            ),
        )
