"""Calico 3 resources from YAML, as Calico's etcdv3 backend stores them in etcd.

``calicoctl apply`` goes through libcalico-go's client, which fills in a few defaults
and the object metadata, and its etcdv3 backend writes the resource as compact JSON
(``kind``, ``apiVersion``, ``metadata``, ``spec``) at
``/calico/resources/v3/projectcalico.org/<plural>/<name>``, without ``resourceVersion``
(etcd's revision is the version). :func:`etcd_keys` does the same for a YAML file of
resources; the IPPool defaults (``ipipMode``/``vxlanMode`` ``Never``, the block size,
``nodeSelector: all()``) are applied as the client applies them.

Block affinities are not v3 resources in etcd mode but IPAM keys of their own; a
document ``kind: BlockAffinity`` with ``spec: {node, cidr, state}`` becomes
``/calico/ipam/v2/host/<node>/ipv4/block/<cidr>`` = ``{"state": ..., "deleted": false}``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any

import yaml

PREFIX = "/calico/resources/v3/projectcalico.org"
PLURALS = {
    "Node": "nodes",
    "BGPPeer": "bgppeers",
    "BGPConfiguration": "bgpconfigurations",
    "IPPool": "ippools",
}
CREATED = "2024-05-01T10:00:00Z"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def resource_value(doc: dict[str, Any]) -> str:
    """One resource as the etcdv3 backend stores it."""
    kind, meta = doc["kind"], dict(doc.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta.setdefault("uid", hashlib.sha256(f"{kind}/{meta['name']}".encode()).hexdigest()[:32])
    meta.setdefault("creationTimestamp", CREATED)
    spec = dict(doc.get("spec") or {})
    if kind == "IPPool":
        version = ipaddress.ip_network(spec["cidr"], strict=False).version
        spec.setdefault("ipipMode", "Never")
        spec.setdefault("vxlanMode", "Never")
        spec.setdefault("blockSize", 26 if version == 4 else 122)
        spec.setdefault("nodeSelector", "all()")
    return _compact({"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": meta, "spec": spec})


def key_of(doc: dict[str, Any]) -> str:
    if doc["kind"] == "BlockAffinity":
        spec = doc["spec"]
        version = ipaddress.ip_network(spec["cidr"]).version
        return f"/calico/ipam/v2/host/{spec['node']}/ipv{version}/block/{spec['cidr'].replace('/', '-', 1)}"
    return f"{PREFIX}/{PLURALS[doc['kind']]}/{doc['metadata']['name']}"


def value_of(doc: dict[str, Any]) -> str:
    if doc["kind"] == "BlockAffinity":
        return _compact({"state": doc["spec"].get("state", "confirmed"), "deleted": False})
    return resource_value(doc)


def etcd_keys(source: Path | str) -> dict[str, str]:
    """The etcd keys and values of every resource in a YAML file (or YAML text)."""
    text = source.read_text() if isinstance(source, Path) else source
    return {key_of(doc): value_of(doc) for doc in yaml.safe_load_all(text) if doc}
