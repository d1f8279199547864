"""BIRD 2: one daemon for both address families (the ``bird2/`` templates).

:class:`Bird2Context` is what ``calico_bird2()`` gives the BIRD 2 templates: the node-wide
settings (router id, logging) once, and one :class:`Bird2Family` per address family.
A family is a :class:`~confpy.calico.context.BirdContext`, so every decision of the BIRD
1.6 set (sessions, passive side, AS numbers, route reflection, blocks, pools) is the same
code for both sets; what is added here is only what BIRD 2 spells differently:

- names carry the family (``bgp_template_v4``, ``calico_aggr_v6``, ...) because both
  families share one file set, and protocols carry ``ipv4 {}`` / ``ipv6 {}`` channels;
- IPIP: upstream BIRD has no ``krt_tunnel``; the kernel filter makes a route
  ``via <BGP next hop> dev <ipip device> onlink`` with the writable route attributes
  ``ifname``, ``onlink`` and ``gw`` (:attr:`Bird2Family.kernel_rules`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from confpy.calico.context import BirdContext
from confpy.calico.model import FAMILIES
from confpy.keyview import KeyView


@dataclass(frozen=True, slots=True)
class KernelRule:
    """What BIRD 2's kernel filter does with routes inside one pool.

    ``action``: ``reject`` (a VXLAN pool: Felix programs those routes), ``accept``
    (no IPIP: installed via the BGP next hop) or ``tunnel`` (BGP routes go through the
    IPIP device ``device``, a BIRD string literal, to their BGP next hop; when
    ``outside`` is set, only those whose next hop is outside that subnet: cross-subnet).
    """

    cidr: str
    action: str
    device: str = '""'
    outside: str | None = None


class Bird2Family(BirdContext):
    """One address family of the BIRD 2 daemon: the family's context, BIRD 2's names."""

    @property
    def channel(self) -> str:
        return self.family.channel

    @property
    def tag(self) -> str:
        return self.family.tag

    @cached_property
    def kernel_rules(self) -> list[KernelRule]:
        """One rule per pool of :attr:`kernel_pools` (IPv4 only, and only when the
        node's subnet is known: Calico's condition for per-pool kernel rules)."""
        rules = []
        for pool in self.kernel_pools:
            if pool.kernel_action == "reject":
                rules.append(KernelRule(pool.cidr, "reject"))
            elif not pool.has_tunnel:
                rules.append(KernelRule(pool.cidr, "accept"))
            else:
                outside = self.network if pool.kernel_action == "cross-subnet" else None
                rules.append(KernelRule(pool.cidr, "tunnel", pool.tunnel, outside))
        return rules


class Bird2Context:
    """The typed view of the Calico keys for one node's BIRD 2 daemon."""

    def __init__(self, view: KeyView, node_name: str, environ: Mapping[str, str]) -> None:
        self.families = tuple(Bird2Family(view, node_name, FAMILIES[v], environ) for v in (4, 6))

    @property
    def node(self) -> str:
        return self.families[0].node

    @property
    def router_id(self) -> str:
        """One router id for the daemon (CALICO_ROUTER_ID, else the node's IPv4 address)."""
        return self.families[0].router_id

    @property
    def debug(self) -> str:
        """The logging statement of device and direct (node-wide, like the sessions')."""
        return self.families[0].debug


def build_bird2_context(
    view: KeyView, node_name: str, environ: Mapping[str, str] | None = None
) -> Bird2Context:
    """The context behind the ``calico_bird2()`` template function."""
    return Bird2Context(view, node_name, os.environ if environ is None else environ)
