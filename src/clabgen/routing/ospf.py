"""`routing: ospf`: OSPFv2 over the tunnels, configured per gateway and its routing table predicted.

Configuration (documented in docs/intent.md): every tunnel is a point-to-point OSPF link with
cost `routing.cost` (or its own), hello/dead from the intent (lab defaults 1/4 s), in `routing.area`
(or its own); a gateway's LAN and loopback sit, passive, in its home area (area 0 if one of its
tunnels is in it, else its lowest tunnel area); LAN cost = `routing.cost`, loopback cost 0 (FRR's).

Prediction follows RFC 2328 as FRR implements it: per area, Dijkstra from the router over the
area's links, every stub network (tunnel subnets from both ends, LANs, loopbacks) at the cost of the
path to its router plus the stub's cost, equal-cost paths kept together (ECMP); intra-area routes
beat inter-area ones; area border routers summarise each attached area's networks into the others
(backbone summaries are passed on into non-backbone areas); a non-border router takes inter-area
routes from its area's border routers, a border router from the backbone's.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ..planned import Adjacency, OspfConfig, OspfIface, Route, Tunnel
from .base import RoutingInput, RoutingPlan, connected, down_links, static_kernel_routes

BACKBONE = "0"
SPF_TIMERS = (0, 50, 500)      # timers throttle spf: recompute at once after a change (lab default)
TUNNEL_TTL = 64                 # see templates: VyOS 1.4's default, stated on every release


def area_key(area: str) -> int:
    """Areas compare as 32-bit numbers whether written 0 or 0.0.0.0."""
    return int(area) if area.isdigit() else int(IPv4Address(area))


@dataclass(frozen=True)
class Link:
    """One direction of a tunnel as OSPF sees it."""

    node: str
    peer: str
    cost: int
    dev: str
    via: str                   # the peer's tunnel address: the next hop
    area: str


Hops = frozenset[tuple[str, str]]   # (via, dev) first hops of equal-cost paths


class OspfRouting:
    name = "ospf"
    dynamic = True

    # --- configuration -----------------------------------------------------------------------

    def tunnel_cost(self, lab: RoutingInput, t: Tunnel) -> int:
        opts = lab.options.tunnels.get(t.name)
        return opts.cost if opts and opts.cost is not None else lab.options.cost

    def tunnel_area(self, lab: RoutingInput, t: Tunnel) -> str:
        opts = lab.options.tunnels.get(t.name)
        return opts.area if opts and opts.area is not None else lab.options.area

    def home_area(self, lab: RoutingInput, gw: str) -> str:
        areas = {self.tunnel_area(lab, t) for t in lab.tunnels if any(e.node == gw for e in t.ends)}
        if not areas:
            return lab.options.area
        return min(areas, key=area_key)

    def plan(self, lab: RoutingInput) -> RoutingPlan:
        o = lab.options
        configs: dict[str, OspfConfig] = {}
        adjacencies: list[Adjacency] = []
        for site in lab.sites:
            gw = site.gateway
            home = self.home_area(lab, gw)
            loop = lab.loopbacks[gw]
            ifaces: list[OspfIface] = []
            nets: dict[str, list[IPv4Network]] = {}
            for t in lab.tunnels:
                for e in t.ends:
                    if e.node != gw:
                        continue
                    area = self.tunnel_area(lab, t)
                    ifaces.append(OspfIface(e.ifname, "tunnel", area, self.tunnel_cost(lab, t), False, o.hello, o.dead,
                                            "point-to-point", o.bfd, o.retransmit))
                    nets.setdefault(area, []).append(t.subnet)
                    peer = t.peer(e)
                    adjacencies.append(Adjacency(gw, peer.node, "ospf", e.ifname, peer.address.ip,
                                                 str(lab.loopbacks[peer.node].ip)))
            ifaces.append(OspfIface(site.lan_if, "ethernet", home, o.cost, o.passive_lans))
            ifaces.append(OspfIface("lo", "loopback", home, None, True))
            nets.setdefault(home, []).extend([site.lan, loop.network])
            areas = tuple((a, tuple(dict.fromkeys(nets[a]))) for a in sorted(nets, key=area_key))
            configs[gw] = OspfConfig(loop.ip, areas, tuple(ifaces), SPF_TIMERS)
        return RoutingPlan(ospf=configs, adjacencies=tuple(adjacencies), tunnel_ttl=TUNNEL_TTL)

    # --- prediction --------------------------------------------------------------------------

    def routes(self, lab: RoutingInput, plan: RoutingPlan, down: frozenset[str] = frozenset(),
               down_devs: frozenset[tuple[str, str]] | None = None) -> Mapping[str, tuple[Route, ...]]:
        devs = down_links(lab, down, down_devs)
        up = [t for t in lab.tunnels if t.name not in down]
        links: dict[str, dict[str, list[Link]]] = {}     # area -> node -> links
        stubs: dict[str, dict[str, list[tuple[IPv4Network, int]]]] = {}   # area -> node -> (prefix, cost)
        for t in lab.tunnels:
            area, cost = self.tunnel_area(lab, t), self.tunnel_cost(lab, t)
            for e in t.ends:
                p = t.peer(e)
                if t in up:
                    links.setdefault(area, {}).setdefault(e.node, []).append(
                        Link(e.node, p.node, cost, e.ifname, str(p.address.ip), area))
                if (e.node, e.ifname) not in devs:   # a p2p interface that is up announces its subnet,
                    stubs.setdefault(area, {}).setdefault(e.node, []).append((t.subnet, cost))  # neighbour or not
        for site in lab.sites:
            home = self.home_area(lab, site.gateway)
            own = stubs.setdefault(home, {}).setdefault(site.gateway, [])
            own += [(site.lan, lab.options.cost), (lab.loopbacks[site.gateway].network, 0)]
        areas_of: dict[str, set[str]] = {}
        for area, nodes in stubs.items():
            for node in nodes:
                areas_of.setdefault(node, set()).add(area)
        attached = connected(lab, devs)
        # intra-area routes of every router in every area it is attached to
        intra: dict[str, dict[str, dict[IPv4Network, tuple[int, Hops]]]] = {}
        for node, areas in areas_of.items():
            for area in areas:
                dist, first = _spf(node, links.get(area, {}))
                best: dict[IPv4Network, tuple[int, Hops]] = {}
                for other, d in dist.items():
                    for prefix, cost in stubs[area].get(other, ()):
                        hops = first[other] if other != node else frozenset()
                        _offer(best, prefix, d + cost, hops)
                intra.setdefault(node, {})[area] = best
        abrs = {n for n, a in areas_of.items() if len(a) > 1 and BACKBONE in {str(area_key(x)) for x in a}}
        out: dict[str, list[Route]] = static_kernel_routes(lab, plan, devs)
        for node, areas in areas_of.items():
            table: dict[IPv4Network, tuple[int, Hops]] = {}
            for area in areas:
                for prefix, (cost, hops) in intra[node][area].items():
                    _offer(table, prefix, cost, hops)
            for prefix, (cost, hops) in self._inter_area(node, areas, abrs, intra, links).items():
                if prefix not in table:
                    table[prefix] = (cost, hops)
            facts = lab.kernel(node)
            routes = out.setdefault(node, [])
            for prefix in sorted(table, key=lambda n: (int(n.network_address), n.prefixlen)):
                cost, hops = table[prefix]
                if prefix in attached.get(node, ()) or not hops:
                    continue
                routes.append(_kernel_route(prefix, cost, hops, facts.metric))
        return {n: tuple(r) for n, r in out.items()}

    def _inter_area(self, node: str, areas: set[str], abrs: set[str],
                    intra: dict[str, dict[str, dict[IPv4Network, tuple[int, Hops]]]],
                    links: dict[str, dict[str, list[Link]]]) -> dict[IPv4Network, tuple[int, Hops]]:
        """Summary routes: a border router's cost to a network it reaches inside another of its
        areas, plus the path to that border router (RFC 2328 16.2, no virtual links)."""
        backbone = next((a for a in areas if str(area_key(a)) == BACKBONE), None)
        via_areas = [backbone] if node in abrs and backbone else list(areas)
        table: dict[IPv4Network, tuple[int, Hops]] = {}
        for area in via_areas:
            if area is None:
                continue
            dist, first = _spf(node, links.get(area, {}))
            for abr in sorted(abrs):
                if abr == node or abr not in dist:
                    continue
                for prefix, cost in _summaries(abr, area, abrs, intra, links).items():
                    _offer(table, prefix, dist[abr] + cost, first[abr])
        return table


def _summaries(abr: str, into: str, abrs: set[str], intra: dict[str, dict[str, dict[IPv4Network, tuple[int, Hops]]]],
               links: dict[str, dict[str, list[Link]]]) -> dict[IPv4Network, int]:
    """What border router `abr` announces into area `into`: its intra-area networks of its other
    areas, and (into a non-backbone area) what it learns from the backbone's other border routers."""
    out: dict[IPv4Network, int] = {}
    mine = intra.get(abr, {})
    for area, routes in mine.items():
        if area == into:
            continue
        for prefix, (cost, _) in routes.items():
            if prefix not in mine.get(into, {}):
                out[prefix] = min(cost, out.get(prefix, cost))
    if str(area_key(into)) != BACKBONE:
        backbone = next((a for a in mine if str(area_key(a)) == BACKBONE), None)
        if backbone is not None:
            dist, _ = _spf(abr, links.get(backbone, {}))
            for other in sorted(abrs):
                if other == abr or other not in dist:
                    continue
                for area, routes in intra.get(other, {}).items():
                    if str(area_key(area)) == BACKBONE or area == into:
                        continue
                    for prefix, (cost, _) in routes.items():
                        if prefix in out or any(prefix in r for r in mine.values()):
                            continue
                        total = dist[other] + cost
                        out[prefix] = min(total, out.get(prefix, total))
    return out


def _offer(table: dict[IPv4Network, tuple[int, Hops]], prefix: IPv4Network, cost: int, hops: Hops) -> None:
    """Keep the cheapest paths to prefix; equal cost adds the first hops (ECMP)."""
    have = table.get(prefix)
    if have is None or cost < have[0]:
        table[prefix] = (cost, hops)
    elif cost == have[0]:
        table[prefix] = (cost, have[1] | hops)


def _spf(root: str, links: dict[str, list[Link]]) -> tuple[dict[str, int], dict[str, Hops]]:
    """Dijkstra from root: the distance to every router and the first hops of all shortest paths."""
    dist: dict[str, int] = {root: 0}
    first: dict[str, Hops] = {root: frozenset()}
    heap: list[tuple[int, str]] = [(0, root)]
    done: set[str] = set()
    while heap:
        d, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        for link in links.get(node, ()):
            nd = d + link.cost
            hops = frozenset({(link.via, link.dev)}) if node == root else first[node]
            if link.peer not in dist or nd < dist[link.peer]:
                dist[link.peer] = nd
                first[link.peer] = hops
                heapq.heappush(heap, (nd, link.peer))
            elif nd == dist[link.peer] and link.peer not in done:
                first[link.peer] = first[link.peer] | hops
    return dist, first


def _kernel_route(prefix: IPv4Network, cost: int, hops: Hops, metric: int | None) -> Route:
    from ..planned import NextHop
    ordered = sorted(hops, key=lambda h: (h[1], IPv4Address(h[0])))
    if len(ordered) == 1:
        (via, dev), = ordered
        return Route(str(prefix), dev, via=via, proto="ospf", scope="universe", metric=metric, cost=cost)
    return Route(str(prefix), "", proto="ospf", scope="universe", metric=metric,
                 nexthops=tuple(NextHop(v, d) for v, d in ordered), cost=cost)
