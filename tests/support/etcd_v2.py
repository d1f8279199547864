"""etcd's v2 API for the test servers (``EtcdServer(enable_v2=True)``), over plain HTTP.

Keys are written the way Calico 2.x wrote them, one v2 request each, with urllib: an
independent client, not confpy's.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class V2Api:
    """Mixed into :class:`tests.support.etcd_server.EtcdServer`."""

    endpoint: str

    def _opener(self) -> urllib.request.OpenerDirector:
        raise NotImplementedError

    def _etcdctl_binary(self) -> str:
        raise NotImplementedError

    def v2(self, method: str, key: str, **params: str) -> dict[str, Any]:
        """One v2 request on ``/v2/keys<key>``; returns etcd's JSON answer, errors included."""
        body = urllib.parse.urlencode(params).encode() if method in ("PUT", "POST") else None
        query = "" if body is not None or not params else "?" + urllib.parse.urlencode(params)
        url = f"{self.endpoint}/v2/keys{urllib.parse.quote(key)}{query}"
        request = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self._opener().open(request, timeout=5) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as e:
            return dict(json.load(e))

    def enable_v2_auth(self, root_password: str) -> None:
        """Create the v2 API's ``root`` user and turn the v2 API's authentication on."""
        env = {**os.environ, "ETCDCTL_API": "2"}
        for args, answer in ((("user", "add", "root"), f"{root_password}\n"), (("auth", "enable"), None)):
            p = subprocess.run(
                [self._etcdctl_binary(), f"--endpoints={self.endpoint}", *args],
                input=answer, capture_output=True, text=True, env=env, timeout=10,
            )  # fmt: skip
            if p.returncode:
                raise RuntimeError(f"etcdctl (v2) {' '.join(args)} failed: {p.stderr.strip()}")

    def v2_put(self, key: str, value: str) -> int:
        """Set one key through the v2 API; returns its index."""
        answer = self.v2("PUT", key, value=value)
        if "node" not in answer:
            raise RuntimeError(f"v2 set {key} failed: {answer}")
        return int(answer["node"]["modifiedIndex"])

    def v2_delete(self, key: str, *, recursive: bool = False) -> int:
        answer = self.v2("DELETE", key, **({"recursive": "true"} if recursive else {}))
        if "node" not in answer:
            raise RuntimeError(f"v2 delete {key} failed: {answer}")
        return int(answer["node"]["modifiedIndex"])

    def v2_load(self, values: dict[str, str]) -> int:
        """Set every key of ``values`` (one index each); returns the last index."""
        index = 0
        for key, value in values.items():
            index = self.v2_put(key, value)
        return index
