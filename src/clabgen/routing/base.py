"""What a routing protocol gets from the plan and gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from typing import Protocol

from ..codec import made
from ..model import Routing
from ..planned import Adjacency, BgpConfig, OspfConfig, Policy, Route, SiteInfo, StaticRoute, Texts, Tunnel


@dataclass(frozen=True)
class KernelFacts:
    """How a gateway's platform puts routes into the kernel (VyOS: FRR's zebra, metric 20)."""

    static_proto: str = "static"
    metric: int | None = None


@dataclass(frozen=True)
class RoutingInput:
    """The lab as a routing protocol sees it: sites (each a LAN behind a gateway), tunnels,
    the gateways' loopbacks and AS numbers, the intent's routing options."""

    sites: tuple[SiteInfo, ...]
    tunnels: tuple[Tunnel, ...]
    options: Routing
    loopbacks: Mapping[str, IPv4Interface] = field(default_factory=dict)   # gateway -> loopback /32
    asns: Mapping[str, int] = field(default_factory=dict)                  # gateway -> AS (bgp)
    facts: Mapping[str, KernelFacts] = field(default_factory=dict)         # gateway -> kernel facts

    def kernel(self, gateway: str) -> KernelFacts:
        return self.facts.get(gateway, KernelFacts())


@dataclass(frozen=True)
class RoutingPlan:
    """Per gateway: what its configuration declares, and the sessions the plan expects."""

    static: Mapping[str, tuple[StaticRoute, ...]] = field(default_factory=dict)
    ospf: Mapping[str, OspfConfig] = field(default_factory=dict)
    bgp: Mapping[str, BgpConfig] = field(default_factory=dict)
    adjacencies: tuple[Adjacency, ...] = ()
    tunnel_ttl: int | None = None     # an outer TTL every tunnel states (see routing/ospf.py)
    policies: Mapping[str, tuple[Policy, ...]] = field(default_factory=dict)   # policy-based IPsec (static)


class RoutingProtocol(Protocol):
    name: str
    dynamic: bool                     # routes follow the topology when a tunnel fails

    def plan(self, lab: RoutingInput) -> RoutingPlan:
        """Derive every gateway's routing configuration; pure, deterministic."""
        ...

    def routes(self, lab: RoutingInput, plan: RoutingPlan, down: frozenset[str] = frozenset(),
               down_devs: frozenset[tuple[str, str]] | None = None) -> Mapping[str, tuple[Route, ...]]:
        """The routes each gateway's kernel gets from its routing configuration (not the connected
        ones) when the named tunnels carry nothing and the (node, interface) links are down
        (default: both ends of each tunnel that is down)."""
        ...


def down_links(lab: RoutingInput, down: frozenset[str],
               down_devs: frozenset[tuple[str, str]] | None) -> frozenset[tuple[str, str]]:
    if down_devs is not None:
        return down_devs
    return frozenset((e.node, e.ifname) for t in lab.tunnels if t.name in down for e in t.ends)


def connected(lab: RoutingInput, down_devs: frozenset[tuple[str, str]]) -> dict[str, set[IPv4Network]]:
    """Each gateway's connected prefixes: LAN, loopback, tunnels whose interface is up."""
    out = {s.gateway: {s.lan} for s in lab.sites}
    for gw, loop in lab.loopbacks.items():
        out[gw].add(loop.network)
    for t in lab.tunnels:
        for e in t.ends:
            if (e.node, e.ifname) not in down_devs and not t.policy:
                out[e.node].add(t.subnet)
    return out


def static_kernel_routes(lab: RoutingInput, plan: RoutingPlan, down_devs: frozenset[tuple[str, str]]
                         ) -> dict[str, list[Route]]:
    """Declared static routes as the kernel shows them; one over a link that is down is gone
    (the kernel drops routes through a link that goes down). Each fault scenario filters the same
    Route objects, so a gateway a fault does not touch has an identical (`is`) table."""
    every = _all_static(lab, plan)
    if not down_devs:
        return {gw: list(routes) for gw, routes in every.items()}
    return {gw: [r for r in routes if (gw, r.dev) not in down_devs] for gw, routes in every.items()}


_STATIC: list[tuple[RoutingInput, RoutingPlan, dict[str, list[Route]]]] = []   # the last few labs


def _all_static(lab: RoutingInput, plan: RoutingPlan) -> dict[str, list[Route]]:
    for known_lab, known_plan, routes in _STATIC:
        if known_lab is lab and known_plan is plan:
            return routes
    out: dict[str, list[Route]] = {}
    text = Texts()
    for gw, declared in plan.static.items():
        facts = lab.kernel(gw)
        proto, metric = facts.static_proto, facts.metric
        out[gw] = [made(Route, {"dst": text(r.prefix), "dev": r.dev, "via": text(r.next_hop), "proto": proto,
                                "scope": "universe", "src": None, "metric": metric, "nexthops": (), "cost": None,
                                "as_path": None}) for r in declared]
    _STATIC[:] = [*_STATIC[-3:], (lab, plan, out)]
    return out
