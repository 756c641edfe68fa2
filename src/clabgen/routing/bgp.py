"""`routing: bgp`: BGP sessions over the tunnels, configured per gateway and the best paths predicted.

Configuration (docs/intent.md): every gateway gets its own private AS (`routing.as_base` + site
index, or its `asn:`); two tunnel ends in different ASes peer eBGP over the tunnel addresses; two in
one AS peer iBGP, over the tunnel addresses or (`ibgp: loopback`) over their loopbacks with a static
route to the peer's loopback through the tunnel, always with next-hop-self. Each gateway announces
its LAN (and its loopback with `announce: [lans, loopbacks]`); timers keepalive/holdtime from the
intent (lab defaults 1/3 s); `bgp bestpath compare-routerid` makes ties deterministic.

Prediction runs the path-vector protocol to its fixed point with FRR's decision process for what
differs here: AS-path length, then eBGP over iBGP, then lowest router ID, then lowest peer address;
a route carrying the router's own AS is refused, iBGP routes are not passed to iBGP peers, and
equal paths through the same neighbouring AS are kept together (FRR's default multipath).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ..planned import Adjacency, BgpConfig, BgpPeer, NextHop, Route, StaticRoute
from .base import RoutingInput, RoutingPlan, connected, down_links, static_kernel_routes

TUNNEL_TTL = 64


@dataclass(frozen=True)
class Session:
    node: str
    peer: str
    tunnel: str
    local: IPv4Address          # the session's addresses
    remote: IPv4Address
    dev: str                    # the tunnel interface it runs over
    hop: IPv4Address            # the kernel's next hop: the peer's tunnel address (a loopback resolves to it)
    ebgp: bool


@dataclass(frozen=True)
class Path:
    as_path: tuple[int, ...]
    via: str | None             # next hop (None: originated here)
    dev: str | None
    ebgp: bool
    peer_id: IPv4Address        # the advertising router's ID (compare-routerid)
    peer_address: IPv4Address
    ibgp_learned: bool

    def rank(self) -> tuple[int, int, int, int, int]:
        local = 0 if self.via is None else 1
        return (local, len(self.as_path), 0 if self.ebgp else 1, int(self.peer_id), int(self.peer_address))


class BgpRouting:
    name = "bgp"
    dynamic = True

    def sessions(self, lab: RoutingInput, down: frozenset[str] = frozenset()) -> list[Session]:
        out = []
        loopback = lab.options.ibgp == "loopback"
        for t in lab.tunnels:
            if t.name in down:
                continue
            for e in t.ends:
                p = t.peer(e)
                ebgp = lab.asns[e.node] != lab.asns[p.node]
                if not ebgp and loopback:
                    local, remote = lab.loopbacks[e.node].ip, lab.loopbacks[p.node].ip
                else:
                    local, remote = e.address.ip, p.address.ip
                out.append(Session(e.node, p.node, t.name, local, remote, e.ifname, p.address.ip, ebgp))
        return out

    def plan(self, lab: RoutingInput) -> RoutingPlan:
        o = lab.options
        static: dict[str, list[StaticRoute]] = {}
        peers: dict[str, list[BgpPeer]] = {}
        adjacencies = []
        for s in self.sessions(lab):
            over_loopback = not s.ebgp and o.ibgp == "loopback"
            if over_loopback:   # reach the peer's loopback through the tunnel, as VyOS would be told to
                static.setdefault(s.node, []).append(StaticRoute(IPv4Network(f"{s.remote}/32"), s.hop, s.dev))
            peers.setdefault(s.node, []).append(BgpPeer(
                s.remote, lab.asns[s.peer], s.peer, update_source="lo" if over_loopback else None,
                next_hop_self=not s.ebgp, bfd=o.bfd))
            adjacencies.append(Adjacency(s.node, s.peer, "bgp", s.dev, s.remote, str(lab.asns[s.peer])))
        configs = {}
        for site in lab.sites:
            gw = site.gateway
            nets = [site.lan] if "lans" in o.announce else []
            if "loopbacks" in o.announce:
                nets.append(lab.loopbacks[gw].network)
            configs[gw] = BgpConfig(lab.asns[gw], lab.loopbacks[gw].ip, tuple(peers.get(gw, ())), tuple(nets),
                                    o.keepalive, o.holdtime)
        return RoutingPlan(static={g: tuple(r) for g, r in static.items()}, bgp=configs,
                           adjacencies=tuple(adjacencies), tunnel_ttl=TUNNEL_TTL)

    def routes(self, lab: RoutingInput, plan: RoutingPlan, down: frozenset[str] = frozenset(),
               down_devs: frozenset[tuple[str, str]] | None = None) -> Mapping[str, tuple[Route, ...]]:
        devs = down_links(lab, down, down_devs)
        best = self.best_paths(lab, plan, down)
        out = static_kernel_routes(lab, plan, devs)
        attached = connected(lab, devs)
        for node, table in best.items():
            metric = lab.kernel(node).metric
            routes = out.setdefault(node, [])
            for prefix in sorted(table, key=lambda n: (int(n.network_address), n.prefixlen)):
                paths = table[prefix]
                if paths[0].via is None or prefix in attached[node]:
                    continue
                hops = sorted({(p.via or "", p.dev or "") for p in paths}, key=lambda h: (h[1], IPv4Address(h[0])))
                if len(hops) == 1:
                    (via, dev), = hops
                    routes.append(Route(str(prefix), dev, via=via, proto="bgp", scope="universe", metric=metric,
                                        as_path=paths[0].as_path))
                else:
                    routes.append(Route(str(prefix), "", proto="bgp", scope="universe", metric=metric,
                                        nexthops=tuple(NextHop(v, d) for v, d in hops), as_path=paths[0].as_path))
        return {n: tuple(r) for n, r in out.items()}

    def best_paths(self, lab: RoutingInput, plan: RoutingPlan, down: frozenset[str] = frozenset()
                   ) -> dict[str, dict[IPv4Network, list[Path]]]:
        """Every gateway's best path(s) per prefix once nothing changes any more (rounds of
        advertisements: deterministic, and the decision process has no ties left)."""
        sessions = self.sessions(lab, down)
        by_node: dict[str, list[Session]] = {}
        for s in sessions:
            by_node.setdefault(s.node, []).append(s)
        ids = {gw: lab.loopbacks[gw].ip for gw in lab.asns}
        best: dict[str, dict[IPv4Network, list[Path]]] = {}
        for gw, cfg in plan.bgp.items():
            best[gw] = {n: [Path((), None, None, False, ids[gw], IPv4Address(0), False)] for n in cfg.networks}
        for _ in range(4 * len(best) + 4):
            changed = False
            new: dict[str, dict[IPv4Network, list[Path]]] = {}
            for node in sorted(best):
                candidates: dict[IPv4Network, list[Path]] = {n: list(p) for n, p in best[node].items() if p[0].via is None}
                for s in by_node.get(node, ()):
                    for prefix, paths in best.get(s.peer, {}).items():
                        path = paths[0]
                        if path.ibgp_learned and not s.ebgp:
                            continue           # iBGP split horizon
                        as_path = ((lab.asns[s.peer],) + path.as_path) if s.ebgp else path.as_path
                        if lab.asns[node] in as_path:
                            continue           # AS-path loop
                        candidates.setdefault(prefix, []).append(
                            Path(as_path, str(s.hop), s.dev, s.ebgp, ids[s.peer], s.remote, not s.ebgp))
                table = {}
                for prefix, paths in candidates.items():
                    paths.sort(key=Path.rank)
                    top = paths[0]
                    multi = [p for p in paths if _multipath(top, p)]
                    table[prefix] = multi
                new[node] = table
                if _signature(table) != _signature(best.get(node, {})):
                    changed = True
            best = new
            if not changed:
                break
        return best


def _multipath(a: Path, b: Path) -> bool:
    """FRR's multipath test: equal up to the router-ID tie-break, same neighbouring AS."""
    if a.via is None or b.via is None:
        return a is b
    return (len(a.as_path) == len(b.as_path) and a.ebgp == b.ebgp
            and (a.as_path[:1] == b.as_path[:1]))


def _signature(table: dict[IPv4Network, list[Path]]) -> dict[IPv4Network, tuple[tuple[str | None, tuple[int, ...]], ...]]:
    return {n: tuple((p.via, p.as_path) for p in paths) for n, paths in table.items()}
