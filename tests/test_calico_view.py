"""The v1 view of Calico 3 resources: bad input, and change by change derivation.

Runs :class:`V1View` on resource JSON as Calico's etcdv3 backend stores it
(``tests/support/calico_resources.py``); the same view against a real etcd is in
``tests/test_calico_v3_scenarios.py`` and ``tests/test_calico_watch.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from confpy.calico.v3 import view as view_module
from confpy.calico.v3.view import V1View
from confpy.errors import DataError
from confpy.stores.base import Change, Changes, Resync
from confpy.stores.calico import CalicoStore, ResourceError
from confpy.stores.memory import MemoryStore
from tests.support.calico_resources import key_of, value_of

H = "/calico/bgp/v1/host"
G = "/calico/bgp/v1/global"


def doc(kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


def node(name: str, ip: str, labels: dict[str, str] | None = None, **bgp: Any) -> dict[str, Any]:
    return doc("Node", name, {"bgp": {"ipv4Address": ip, **bgp}}, labels or {})


def peer(name: str, **spec: Any) -> dict[str, Any]:
    return doc("BGPPeer", name, spec)


def put(*docs: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(key_of(d), value_of(d)) for d in docs]


def derived(v: V1View, *docs: dict[str, Any]) -> dict[str, str | None]:
    changed, errors = v.apply(put(*docs))
    assert errors == []
    return changed


def peer_json(ip: str, as_num: int, **fields: Any) -> str:
    value = {"ip": ip, "as_num": str(as_num), "rr_cluster_id": "", "password": None, "source_addr": "UseNodeIP",
             "port": 0, "keep_next_hop": False, "restart_time": ""}  # fmt: skip
    return json.dumps(value | fields, separators=(",", ":"))


# --- bad input: an error naming the etcd key and the field ----------------------------
NODES = "/calico/resources/v3/projectcalico.org/nodes/n1"
PEERS = "/calico/resources/v3/projectcalico.org/bgppeers/p1"
CONFIGS = "/calico/resources/v3/projectcalico.org/bgpconfigurations/default"
POOLS = "/calico/resources/v3/projectcalico.org/ippools/pool1"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (NODES, "{not json", "not a JSON resource"),
        (NODES, "[]", "the value: [] is not a JSON object"),
        (NODES, '{"spec": {"bgp": {"asNumber": "abc"}}}', "spec.bgp.asNumber: 'abc' is not an AS number"),
        (NODES, '{"spec": {"bgp": {"asNumber": true}}}', "spec.bgp.asNumber: True is not an AS number"),
        (NODES, '{"spec": {"bgp": {"ipv4Address": 42}}}', "spec.bgp.ipv4Address: 42 is not a string"),
        (NODES, '{"spec": {"bgp": {"ipv4Address": "fd00::1/64"}}}', "spec.bgp.ipv4Address: 'fd00::1/64' is not an IPv4 address"),
        (NODES, '{"spec": {"bgp": {"ipv6Address": "nope"}}}', "spec.bgp.ipv6Address: 'nope' is not an address"),
        (NODES, '{"spec": {"bgp": "x"}}', "spec.bgp: 'x' is not a JSON object"),
        (NODES, '{"spec": {"bgp": {"routeReflectorClusterID": "x"}}}', "spec.bgp.routeReflectorClusterID: 'x' is not a cluster id"),
        (NODES, '{"metadata": {"labels": {"rack": 1}}}', "metadata.labels.rack: 1 is not a string"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "password": {"secretKeyRef": {"name": "s", "key": "k"}}}}',
         "spec.password.secretKeyRef: {'name': 's', 'key': 'k'}: needs Kubernetes"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "nodeSelector": "rack = \'a\'"}}', "spec.nodeSelector: expected =="),
        (PEERS, '{"spec": {"peerSelector": "has(", "asNumber": 0}}', "spec.peerSelector: expected a label name"),
        (PEERS, '{"spec": {"peerIP": "peer.example", "asNumber": 1}}', "spec.peerIP: 'peer.example' is not an IP address"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1"}}', "spec.asNumber: a peer given by peerIP needs its AS number"),
        (PEERS, '{"spec": {"asNumber": 1}}', "spec.peerIP: a peer needs a peerIP or a peerSelector"),
        (PEERS, '{"spec": {"peerSelector": "all()", "asNumber": 5}}', "spec.asNumber: must be empty with a peerSelector"),
        (PEERS, '{"spec": {"node": "n1", "nodeSelector": "all()", "peerIP": "10.0.0.1", "asNumber": 1}}', "node and nodeSelector cannot both be set"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "keepOriginalNextHop": "yes"}}', "spec.keepOriginalNextHop: 'yes' is not true or false"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "maxRestartTime": "soon"}}', "spec.maxRestartTime: 'soon' is not a duration"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "sourceAddress": "Other"}}', "spec.sourceAddress: 'Other' is not UseNodeIP or None"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "reversePeering": "Never"}}', "spec.reversePeering: 'Never' is not Auto or Manual"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "filters": ["f1"]}}', "spec.filters: ['f1']: not supported"),
        (PEERS, '{"spec": {"peerIP": "10.0.0.1", "asNumber": 1, "nextHopMode": "Self"}}', "spec.nextHopMode: 'Self': not supported"),
        (CONFIGS, '{"spec": {"listenPort": 70000}}', "spec.listenPort: 70000 is not between 1 and 65535"),
        (CONFIGS, '{"spec": {"nodeToNodeMeshEnabled": "no"}}', "spec.nodeToNodeMeshEnabled: 'no' is not true or false"),
        (CONFIGS, '{"spec": {"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["nope"]}]}}',
         "spec.prefixAdvertisements[0].communities[0]: 'nope': no such community in spec.communities"),
        (CONFIGS, '{"spec": {"communities": [{"name": "c", "value": "1:2:3:4"}], "prefixAdvertisements": []}}', "spec.communities[0].value: '1:2:3:4' is not"),
        (CONFIGS, '{"spec": {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}}', "spec.serviceClusterIPs: [{'cidr': '10.96.0.0/12'}]: service advertisement needs Kubernetes"),
        (CONFIGS, '{"spec": {"bindMode": "NodeIP"}}', "spec.bindMode: 'NodeIP': not supported"),
        (POOLS, '{"spec": {"cidr": "10.0.0.0/33"}}', "spec.cidr: '10.0.0.0/33' is not a CIDR"),
        (POOLS, '{"spec": {}}', "spec.cidr: missing"),
        (POOLS, '{"spec": {"cidr": "10.0.0.0/8", "ipipMode": "Sometimes"}}', "spec.ipipMode: 'Sometimes' is not Always, CrossSubnet or Never"),
        (POOLS, '{"spec": {"cidr": "10.0.0.0/8", "disableBGPExport": true}}', "spec.disableBGPExport: True: not supported"),
    ],
)  # fmt: skip
def test_bad_input_is_an_error_naming_the_etcd_key_and_the_field(key: str, value: str, message: str) -> None:
    changed, errors = V1View("n1").apply([(key, value)])
    assert changed == {}
    assert [type(e) for e in errors] == [DataError]
    assert str(errors[0]).startswith(f"key {key}: ")
    assert message in str(errors[0])


def test_settings_at_their_off_values_are_accepted() -> None:
    v = V1View("n1")
    changed = derived(
        v,
        peer(
            "p1",
            peerIP="10.0.0.1",
            asNumber=65000,
            filters=[],
            nextHopMode="Auto",
            ttlSecurity=0,
            password={},
        ),
        doc(
            "BGPConfiguration",
            "default",
            {"bindMode": "None", "serviceClusterIPs": [], "ignoredInterfaces": []},
        ),
    )
    assert changed[f"{G}/peer_v4/10.0.0.1"] == peer_json("10.0.0.1", 65000)


def test_a_bad_resource_keeps_its_last_good_version_until_a_good_one_comes() -> None:
    v = V1View("n1")
    derived(v, node("n1", "10.0.0.1/24", asNumber=64600))
    changed, errors = v.apply([(key_of(node("n1", "x", {})), '{"spec": {"bgp": {"asNumber": "abc"}}}')])
    assert (changed, len(errors)) == ({}, 1)
    assert v.values[f"{H}/n1/as_num"] == "64600"
    assert derived(v, node("n1", "10.0.0.1/24", asNumber=64601)) == {f"{H}/n1/as_num": "64601"}


# --- derivation, change by change -----------------------------------------------------


def test_node_keys_and_their_deletion() -> None:
    v = V1View("n1")
    n = node("n1", "10.0.0.5/24", asNumber="1.10", routeReflectorClusterID="10.0.0.1")
    assert derived(v, n) == {
        f"{H}/n1/ip_addr_v4": "10.0.0.5",
        f"{H}/n1/ip_addr_v6": "",
        f"{H}/n1/network_v4": "10.0.0.0/24",
        f"{H}/n1/as_num": "65546",  # dotted AS 1.10
        f"{H}/n1/rr_cluster_id": "10.0.0.1",
    }
    assert derived(v, n) == {}, "the same resource again changes nothing"
    changed, _ = v.apply([(key_of(n), None)])
    assert changed == dict.fromkeys(
        [
            f"{H}/n1/ip_addr_v4",
            f"{H}/n1/ip_addr_v6",
            f"{H}/n1/network_v4",
            f"{H}/n1/as_num",
            f"{H}/n1/rr_cluster_id",
        ]
    )


def test_a_bare_address_has_a_host_network_and_no_bgp_spec_means_empty_addresses() -> None:
    v = V1View("n1")
    derived(v, node("n1", "10.0.0.5"), doc("Node", "n2", {}))
    assert v.values[f"{H}/n1/network_v4"] == "10.0.0.5/32"
    assert {k: val for k, val in v.values.items() if k.startswith(f"{H}/n2/")} == {
        f"{H}/n2/ip_addr_v4": "",
        f"{H}/n2/ip_addr_v6": "",
        f"{H}/n2/rr_cluster_id": "",
    }


def test_a_label_change_moves_a_node_in_and_out_of_every_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    v = V1View("n1")
    derived(
        v,
        node("n1", "10.0.0.1/24", {"rack": "a"}),
        node("n2", "10.0.0.2/24", {"rack": "b"}),
        peer("tor-a", nodeSelector="rack == 'a'", peerIP="10.0.0.254", asNumber=65000),
        peer("tor-b", nodeSelector="rack == 'b'", peerIP="10.0.1.254", asNumber=65001),
        peer("unrelated", node="n9", peerIP="10.9.9.9", asNumber=65009),
    )
    seen: list[str] = []
    real = view_module.emissions
    monkeypatch.setattr(view_module, "emissions", lambda p, c: seen.append(p.name) or real(p, c))
    changed = derived(v, node("n1", "10.0.0.1/24", {"rack": "b"}))
    assert changed == {
        f"{H}/n1/peer_v4/10.0.0.254": None,
        f"{H}/n1/peer_v4/10.0.1.254": peer_json("10.0.1.254", 65001),
    }
    assert sorted(seen) == ["tor-a", "tor-b"], "only the BGPPeers the node was or is selected by"


def test_a_bgppeer_change_re_derives_its_own_peerings_only() -> None:
    v = V1View("n1")
    derived(v, node("n1", "10.0.0.1/24"), peer("a", peerIP="10.0.0.254", asNumber=65000),
            peer("b", node="n1", peerIP="10.0.0.253", asNumber=65000))  # fmt: skip
    changed = derived(v, peer("a", peerIP="10.0.0.254", asNumber=65000, maxRestartTime="90s"))
    assert changed == {f"{G}/peer_v4/10.0.0.254": peer_json("10.0.0.254", 65000, restart_time="90")}


def test_a_global_peering_wins_over_an_identical_node_one_and_its_removal_brings_that_back() -> None:
    v = V1View("n1")
    derived(v, node("n1", "10.0.0.1/24"), peer("node-tor", node="n1", peerIP="10.0.0.254", asNumber=65001))
    assert f"{H}/n1/peer_v4/10.0.0.254" in v.values
    changed = derived(v, peer("tor", peerIP="10.0.0.254", asNumber=65000))
    assert changed == {
        f"{G}/peer_v4/10.0.0.254": peer_json("10.0.0.254", 65000),
        f"{H}/n1/peer_v4/10.0.0.254": None,
    }
    changed, _ = v.apply([(key_of(peer("tor")), None)])
    assert changed == {
        f"{G}/peer_v4/10.0.0.254": None,
        f"{H}/n1/peer_v4/10.0.0.254": peer_json("10.0.0.254", 65001),
    }


def test_two_bgppeers_for_one_key_the_first_by_name_wins() -> None:
    v = V1View("n1")
    derived(v, peer("b", peerIP="10.0.0.254", asNumber=65002), peer("a", peerIP="10.0.0.254", asNumber=65001))
    assert v.values[f"{G}/peer_v4/10.0.0.254"] == peer_json("10.0.0.254", 65001)


def test_reverse_peerings_follow_the_far_nodes_address_and_not_with_manual() -> None:
    v = V1View("n1")
    derived(v, node("n1", "10.0.0.1/24"), node("n2", "10.0.0.2/24"),
            peer("to-n2", node="n1", peerIP="10.0.0.2", asNumber=64512))  # fmt: skip
    assert v.values[f"{H}/n2/peer_v4/10.0.0.1"] == peer_json("10.0.0.1", 64512)
    # n2 moves: the forward peering names an address no node has any more, the reverse goes.
    changed = derived(v, node("n2", "10.0.0.3/24"))
    assert changed[f"{H}/n2/peer_v4/10.0.0.1"] is None
    derived(v, node("n2", "10.0.0.2/24"))
    changed = derived(v, peer("to-n2", node="n1", peerIP="10.0.0.2", asNumber=64512, reversePeering="Manual"))
    assert changed == {f"{H}/n2/peer_v4/10.0.0.1": None}


def test_the_global_as_and_ports_reach_every_peering_by_selector() -> None:
    v = V1View("n1")
    derived(v, node("n1", "10.0.0.1/24", {"rr": "y"}), node("n2", "10.0.0.2/24"),
            peer("to-rr", nodeSelector="!has(rr)", peerSelector="has(rr)"))  # fmt: skip
    assert v.values[f"{H}/n2/peer_v4/10.0.0.1"] == peer_json("10.0.0.1", 64512)
    changed = derived(v, doc("BGPConfiguration", "default", {"asNumber": 64700, "listenPort": 1790}))
    # A port other than 179 is part of the key.
    assert changed[f"{H}/n2/peer_v4/10.0.0.1"] is None
    assert changed[f"{H}/n2/peer_v4/10.0.0.1-1790"] == peer_json("10.0.0.1", 64700, port=1790)
    assert changed[f"{G}/as_num"] == "64700"
    changed = derived(v, doc("BGPConfiguration", "node.n1", {"listenPort": 1791}))
    assert changed == {
        f"{H}/n1/listen_port": "1791",
        f"{H}/n2/peer_v4/10.0.0.1-1790": None,
        f"{H}/n2/peer_v4/10.0.0.1-1791": peer_json("10.0.0.1", 64700, port=1791),  # n1's own port now
    }


def test_deleting_the_default_configuration_brings_back_confds_defaults() -> None:
    v = V1View("n1")
    derived(v, doc("BGPConfiguration", "default", {"asNumber": 64700, "nodeToNodeMeshEnabled": False,
                                                   "logSeverityScreen": "Warning"}))  # fmt: skip
    assert (v.values[f"{G}/as_num"], v.values[f"{G}/node_mesh"], v.values[f"{G}/loglevel"]) == (
        "64700",
        '{"enabled":false}',
        "none",  # every severity but debug and info is none for BIRD
    )
    changed, _ = v.apply([(key_of(doc("BGPConfiguration", "default", {})), None)])
    assert changed == {f"{G}/as_num": "64512", f"{G}/node_mesh": '{"enabled": true}', f"{G}/loglevel": "info"}


def test_two_pools_with_one_cidr_the_lowest_name_wins() -> None:
    v = V1View("n1")
    a = doc("IPPool", "a", {"cidr": "10.1.0.0/16", "ipipMode": "Always"})
    b = doc("IPPool", "b", {"cidr": "10.1.0.5/16"})  # host bits: Calico keeps the network
    derived(v, b, a)
    key = "/calico/v1/ipam/v4/pool/10.1.0.0-16"
    assert json.loads(v.values[key])["ipip_mode"] == "always"
    changed, _ = v.apply([(key_of(a), None)])
    assert json.loads(changed[key] or "")["ipip_mode"] == ""


def test_only_this_nodes_affinities_pass_and_other_keys_are_ignored() -> None:
    v = V1View("n1")
    changed, errors = v.apply([
        ("/calico/ipam/v2/host/n1/ipv4/block/10.1.0.0-26", '{"state":"pending","deleted":false}'),
        ("/calico/ipam/v2/host/n10/ipv4/block/10.1.0.64-26", "{}"),
        ("/calico/resources/v3/projectcalico.org/networkpolicies/default/p", "{}"),
        ("/calico/resources/v3/projectcalico.org/bgpconfigurations/other", '{"spec": {"asNumber": 1}}'),
    ])  # fmt: skip
    assert (changed, errors) == (
        {"/calico/ipam/v2/host/n1/ipv4/block/10.1.0.0-26": '{"state":"pending","deleted":false}'},
        [],
    )


# --- the store: one batch per revision, bad input in a first snapshot ------------------


def test_the_store_serves_one_batch_per_revision_and_keeps_the_last_good_version() -> None:
    async def main() -> None:
        inner = MemoryStore(dict(put(node("n1", "10.0.0.1/24"))))
        store = CalicoStore(inner, "n1")
        snap = await store.snapshot([H])
        assert snap.values[f"{H}/n1/ip_addr_v4"] == "10.0.0.1"
        events = store.watch([H], snap.revision)
        r1 = await inner.commit(
            dict(put(node("n1", "10.0.0.1/24", asNumber=64600), node("n2", "10.0.0.2/24")))
        )
        first = await anext(events)
        assert isinstance(first, Changes) and first.revision == r1
        assert {c.key for c in first.changes} == {f"{H}/n1/as_num"} | {f"{H}/n2/{k}" for k in
                                                  ("ip_addr_v4", "ip_addr_v6", "network_v4", "rr_cluster_id")}  # fmt: skip
        # Kept at its last good version: no change, a batch without changes at its revision.
        r2 = await inner.put(key_of(node("n2", "")), "{broken")
        assert await anext(events) == Changes(r2, ())
        r3 = await inner.commit(dict(put(node("n1", "10.0.0.1/24", asNumber=64601))))
        assert await anext(events) == Changes(r3, (Change(f"{H}/n1/as_num", "64601"),))
        # A watch resumed from a revision the view is not at starts with the view as it is.
        resumed = store.watch([H], r1)
        resync = await anext(resumed)
        assert isinstance(resync, Resync) and resync.snapshot.values[f"{H}/n2/ip_addr_v4"] == "10.0.0.2"

    asyncio.run(main())


def test_a_bad_resource_in_the_first_snapshot_fails_the_read_naming_it() -> None:
    inner = MemoryStore({key_of(node("n1", "")): '{"spec": {"bgp": {"ipv4Address": "10.0.0.300"}}}'})
    with pytest.raises(
        ResourceError, match=r"key /calico/resources/v3/projectcalico.org/nodes/n1: spec.bgp.ipv4Address"
    ):
        asyncio.run(CalicoStore(inner, "n1").snapshot([H]))
