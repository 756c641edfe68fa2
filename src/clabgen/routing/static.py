"""`routing: static`: every gateway routes each remote LAN to the first hop of a shortest path."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from ipaddress import IPv4Address

from ..codec import made
from ..planned import Policy, Route, StaticRoute, TunnelEnd
from .base import RoutingInput, RoutingPlan, down_links, static_kernel_routes


class StaticRouting:
    name = "static"
    dynamic = False

    def plan(self, lab: RoutingInput) -> RoutingPlan:
        """Breadth-first over the tunnel graph from each gateway, ties broken by tunnel order;
        a LAN with no tunnel path gets no route (the plan warns about such pings). A policy-based
        IPsec tunnel is no edge of that graph: it carries its two LANs' traffic (policies())."""
        adj: dict[str, list[TunnelEnd]] = {}
        peer_address: dict[tuple[str, str], IPv4Address] = {}
        for t in lab.tunnels:
            for e in t.ends:
                if not t.policy:
                    adj.setdefault(e.node, []).append(e)
                    peer_address[(e.node, e.ifname)] = e.address.ip
        policies = _policies(lab)
        routes: dict[str, tuple[StaticRoute, ...]] = {}
        lans = [(s.gateway, s.lan) for s in lab.sites]
        for site in lab.sites:
            first = first_hops(site.gateway, adj)       # never the gateway itself
            # the next hop and interface of each first hop, looked up once (a hub-and-spoke lab's
            # 40 000 routes share a few hundred)
            via = {id(end): (peer_address[(end.peer_node, end.peer_ifname)], end.ifname)
                   for end in first.values()}
            covered = {n for p in policies.get(site.gateway, ()) for n in p.remote}
            out = []
            for gw, lan in lans:
                end = first.get(gw)
                if end is not None and not (covered and lan in covered):
                    next_hop, dev = via[id(end)]
                    out.append(made(StaticRoute, {"prefix": lan, "next_hop": next_hop, "dev": dev}))
            routes[site.gateway] = tuple(out)
        return RoutingPlan(static=routes, policies=policies)

    def routes(self, lab: RoutingInput, plan: RoutingPlan, down: frozenset[str] = frozenset(),
               down_devs: frozenset[tuple[str, str]] | None = None) -> Mapping[str, tuple[Route, ...]]:
        return {gw: tuple(r) for gw, r in static_kernel_routes(lab, plan, down_links(lab, down, down_devs)).items()}


def _policies(lab: RoutingInput) -> dict[str, tuple[Policy, ...]]:
    """Each end's policy: its own LAN to the peer's, mirrored at the peer (as IKE needs). Only the
    two sites' LANs, as VyOS site-to-site peers are usually written: a gateway's policies name
    prefixes it owns an address in (strongSwan's userspace ESP refuses others, and transit through
    a gateway is what GRE over IPsec is for). Packets between them take the tunnel before any route."""
    lan = {s.gateway: s.lan for s in lab.sites}
    out: dict[str, list[Policy]] = {}
    for t in lab.tunnels:
        if t.policy:
            for e in t.ends:
                out.setdefault(e.node, []).append(Policy(t.name, (lan[e.node],), (lan[e.peer_node],)))
    return {gw: tuple(p) for gw, p in out.items()}


def first_hops(src: str, adj: dict[str, list[TunnelEnd]]) -> dict[str, TunnelEnd]:
    """For every gateway reachable from src: the tunnel end at src that starts a shortest path."""
    first: dict[str, TunnelEnd] = {}
    seen = {src}
    queue: deque[tuple[str, TunnelEnd | None]] = deque([(src, None)])
    while queue:
        node, via = queue.popleft()
        for e in adj.get(node, ()):
            if e.peer_node not in seen:
                seen.add(e.peer_node)
                first[e.peer_node] = via or e
                queue.append((e.peer_node, via or e))
    return first
