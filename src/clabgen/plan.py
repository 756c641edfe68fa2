"""Pure derivation Model -> Plan: every address, interface, tunnel and expected route is decided here."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Iterable

from . import platforms
from .emu.vyos import STATIC_METRIC
from .errors import Problems, Where
from .iproute import route_text
from .model import Lab, Site
from .tunnels import TUNNEL_TYPES

CLAB_DEFAULT_MTU = 9500   # containerlab's veth MTU
INITIAL_TTL = 64          # Linux default for ping
LAN_IF, UNDERLAY_IF, SERVER_IF = "eth1", "eth2", "net0"
PING_PAYLOAD_FRAME = 98   # 14 Ethernet + 20 IP + 8 ICMP + 56 data: a default ping in the LAN


@dataclass(frozen=True)
class Iface:
    name: str
    role: str                        # lan | underlay | tunnel | switchport
    address: IPv4Interface | None
    mtu: int
    peer: str | None = None          # "node:ifname" at the other end of the veth


@dataclass(frozen=True)
class Route:
    dst: str                         # "default" or a prefix
    dev: str
    via: str | None = None
    proto: str = "kernel"            # kernel | static | boot
    scope: str = "link"
    src: str | None = None
    metric: int | None = None

    def text(self) -> str:
        """The route as `ip route show` prints it."""
        return route_text(self.dst, self.dev, self.via, self.proto, self.scope, self.src, self.metric)

    def network(self) -> IPv4Network:
        return IPv4Network("0.0.0.0/0" if self.dst == "default" else self.dst)


@dataclass(frozen=True)
class TunnelEnd:
    node: str
    ifname: str
    local: IPv4Address
    remote: IPv4Address
    address: IPv4Interface
    peer_node: str
    peer_ifname: str
    underlay_if: str


@dataclass(frozen=True)
class Tunnel:
    name: str
    type: str
    ip_proto: int
    overhead: int
    mtu: int
    mtu_explicit: bool
    subnet: IPv4Network
    ends: tuple[TunnelEnd, TunnelEnd]


@dataclass(frozen=True)
class StaticRoute:
    prefix: IPv4Network
    next_hop: IPv4Address
    dev: str


@dataclass(frozen=True)
class ClabNode:
    kind: str
    image: str
    cmd: str | None = None
    binds: tuple[str, ...] = ()
    exec: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    role: str                         # gateway | server | switch
    site: str | None
    platform: str                     # gateway platform, or "linux"
    clab: ClabNode
    interfaces: tuple[Iface, ...]
    tunnels: tuple[TunnelEnd, ...] = ()
    static_routes: tuple[StaticRoute, ...] = ()
    routes: tuple[Route, ...] = ()
    gateway: IPv4Address | None = None   # a server's default gateway
    tunnel_mtu_in_config: bool = False

    def iface(self, name: str) -> Iface:
        return next(i for i in self.interfaces if i.name == name)

    @property
    def ethernets(self) -> tuple[Iface, ...]:
        return tuple(i for i in self.interfaces if i.role in ("lan", "underlay"))

    @property
    def address(self) -> IPv4Address | None:
        first = next((i for i in self.interfaces if i.address is not None), None)
        return first.address.ip if first and first.address else None


@dataclass(frozen=True)
class Link:
    a: str                            # "node:ifname"
    b: str
    mtu: int
    segment: str

    @property
    def mtu_is_default(self) -> bool:
        return self.mtu == CLAB_DEFAULT_MTU


@dataclass(frozen=True)
class Hop:
    node: str
    in_if: str | None
    route: str | None                 # the matching route, as `ip route` prints it
    out_if: str | None
    note: str = ""


@dataclass(frozen=True)
class Ping:
    src: str
    dst: str
    address: IPv4Address
    ttl: int
    kind: str = "server"             # server | tunnel


@dataclass(frozen=True)
class Capture:
    tunnel: str
    node: str
    iface: str
    tunnel_if: str
    lan_node: str
    lan_if: str
    src: str
    dst: IPv4Address
    outer_src: IPv4Address
    outer_dst: IPv4Address
    ip_proto: int
    inner_src: IPv4Address
    lan_frame_len: int
    underlay_frame_len: int


@dataclass(frozen=True)
class Walk:
    src: str
    dst: str
    src_address: IPv4Address
    dst_address: IPv4Address
    hops: tuple[Hop, ...]


@dataclass(frozen=True)
class Plan:
    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    tunnels: tuple[Tunnel, ...]
    pings: tuple[Ping, ...]
    captures: tuple[Capture, ...]
    walks: tuple[Walk, ...]
    underlay: IPv4Network
    sites: tuple[tuple[str, IPv4Network, str], ...]   # (site, lan, gateway)
    warnings: tuple[str, ...] = field(default=())

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def gateways(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "gateway")

    @property
    def servers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "server")


class _Pool:
    """Hands out host addresses of a subnet in order, skipping those given explicitly."""

    def __init__(self, net: IPv4Network, taken: Iterable[IPv4Address]) -> None:
        self.net = net
        self.taken = set(taken)

    def take(self, offset: int) -> IPv4Address | None:
        value = int(self.net.network_address) + offset
        while value < int(self.net.broadcast_address):
            addr = IPv4Address(value)
            if addr not in self.taken:
                self.taken.add(addr)
                return addr
            value += 1
        return None


def build(lab: Lab) -> Plan:
    """Derive the whole lab; raise ClabgenError (pointing into the intent) if derivation fails."""
    problems = Problems()
    gw_platform = {s.gateway.name: platforms.load(s.gateway.platform or lab.defaults.gateway_platform)
                   for s in lab.sites}

    # --- addresses -------------------------------------------------------------------------
    lan_addr: dict[str, IPv4Address] = {}
    for site in lab.sites:
        explicit = [a for a in (site.gateway.address, *(s.address for s in site.servers)) if a]
        pool = _Pool(site.lan, explicit)
        gw_addr = site.gateway.address or pool.take(1)
        _need(gw_addr, site.at("lan"), f"{site.lan} has no free address for gateway {site.gateway.name}", problems)
        lan_addr[site.gateway.name] = gw_addr or site.lan.network_address
        for srv in site.servers:
            addr = srv.address or pool.take(10 if site.lan.num_addresses > 12 else 2)
            _need(addr, srv.where, f"{site.lan} has no free address left for {srv.name}", problems)
            lan_addr[srv.name] = addr or site.lan.network_address
    needs_underlay = len(lab.sites) > 1
    underlay_addr: dict[str, IPv4Address] = {}
    if needs_underlay:
        pool = _Pool(lab.underlay.subnet, [s.gateway.underlay_address for s in lab.sites if s.gateway.underlay_address])
        for site in lab.sites:
            addr = site.gateway.underlay_address or pool.take(lab.underlay.first_host)
            _need(addr, lab.underlay.at("subnet"), f"{lab.underlay.subnet} has no free address for {site.gateway.name}", problems)
            underlay_addr[site.gateway.name] = addr or lab.underlay.subnet.network_address

    # --- tunnels ---------------------------------------------------------------------------
    # tunnel interfaces: explicit names first, then tun0, tun1, ... per gateway, skipping those
    taken: dict[str, set[str]] = {}
    for t in lab.tunnels:
        for node, ifname in zip(t.endpoints, t.ifnames or ()):
            taken.setdefault(node, set()).add(ifname)
    tun_count: dict[str, int] = {}
    tunnels: list[Tunnel] = []
    lan_if = {s.gateway.name: s.gateway.lan_ifname or LAN_IF for s in lab.sites}
    underlay_if = {s.gateway.name: s.gateway.underlay_ifname or UNDERLAY_IF for s in lab.sites}
    lan_if.update({srv.name: srv.ifname or SERVER_IF for s in lab.sites for srv in s.servers})
    for t in lab.tunnels:
        ttype = TUNNEL_TYPES[t.type]
        a, b = t.endpoints
        hosts = t.addresses or _first_hosts(t.subnet, 2)
        ifs = []
        for i, node in enumerate((a, b)):
            if t.ifnames:
                ifs.append(t.ifnames[i])
                continue
            while f"tun{tun_count.get(node, 0)}" in taken.get(node, ()):
                tun_count[node] = tun_count.get(node, 0) + 1
            ifs.append(f"tun{tun_count.get(node, 0)}")
            tun_count[node] = tun_count.get(node, 0) + 1
        mtu = t.mtu if t.mtu is not None else lab.underlay.mtu - ttype.overhead
        ends = (
            TunnelEnd(a, ifs[0], underlay_addr[a], underlay_addr[b], IPv4Interface(f"{hosts[0]}/{t.subnet.prefixlen}"),
                      b, ifs[1], underlay_if[a]),
            TunnelEnd(b, ifs[1], underlay_addr[b], underlay_addr[a], IPv4Interface(f"{hosts[1]}/{t.subnet.prefixlen}"),
                      a, ifs[0], underlay_if[b]),
        )
        tunnels.append(Tunnel(t.name or f"{a}-{b}-{t.type}", t.type, ttype.ip_proto, ttype.overhead, mtu,
                              t.mtu is not None, t.subnet, ends))

    # --- links and switches ----------------------------------------------------------------
    names = {n for s in lab.sites for n in (s.gateway.name, *(x.name for x in s.servers))}
    links: list[Link] = []
    switches: list[Node] = []
    peers: dict[tuple[str, str], str] = {}
    switch_image = lab.defaults.server_image
    for site in lab.sites:
        members = [(site.gateway.name, lan_if[site.gateway.name])] + [(s.name, lan_if[s.name]) for s in site.servers]
        _segment(f"lan-{site.name}", members, CLAB_DEFAULT_MTU, f"sw-{site.name}", switch_image,
                 links, switches, peers, names, site.where, problems)
    if needs_underlay:
        members = [(s.gateway.name, underlay_if[s.gateway.name]) for s in lab.sites]
        _segment("underlay", members, lab.underlay.mtu, "sw-underlay", switch_image,
                 links, switches, peers, names, lab.underlay.where, problems)
    # containerlab lists LAN links first, then the underlay (the seed's order)
    problems.raise_if_any()

    # --- nodes -----------------------------------------------------------------------------
    nodes: list[Node] = []
    for site in lab.sites:
        gw = site.gateway
        plat = gw_platform[gw.name]
        ifaces = [Iface(lan_if[gw.name], "lan", IPv4Interface(f"{lan_addr[gw.name]}/{site.lan.prefixlen}"),
                        CLAB_DEFAULT_MTU, peers.get((gw.name, lan_if[gw.name])))]
        if needs_underlay:
            ifaces.append(Iface(underlay_if[gw.name], "underlay",
                                IPv4Interface(f"{underlay_addr[gw.name]}/{lab.underlay.subnet.prefixlen}"),
                                lab.underlay.mtu, peers.get((gw.name, underlay_if[gw.name]))))
        ends = tuple(e for t in tunnels for e in t.ends if e.node == gw.name)
        for t in tunnels:
            for e in t.ends:
                if e.node == gw.name:
                    ifaces.append(Iface(e.ifname, "tunnel", e.address, t.mtu))
        clab = plat.get("clab", {})
        image = gw.image or lab.defaults.gateway_image or plat.get("default_image")
        nodes.append(Node(
            gw.name, "gateway", site.name, plat.name,
            ClabNode(clab.get("kind", "linux"), image, clab.get("cmd"),
                     tuple(b.format(node=gw.name, lab=lab.name) for b in clab.get("binds", ()))),
            tuple(ifaces), ends, tunnel_mtu_in_config=bool(plat.get("tunnel_mtu_in_config"))))
    for site in lab.sites:
        gw_ip = lan_addr[site.gateway.name]
        for srv in site.servers:
            addr = IPv4Interface(f"{lan_addr[srv.name]}/{site.lan.prefixlen}")
            execs = (f"ip addr add {addr} dev {lan_if[srv.name]}", f"ip route replace default via {gw_ip}")
            nodes.append(Node(srv.name, "server", site.name, "linux",
                              ClabNode("linux", srv.image or lab.defaults.server_image, exec=execs),
                              (Iface(lan_if[srv.name], "lan", addr, CLAB_DEFAULT_MTU, peers.get((srv.name, lan_if[srv.name]))),),
                              gateway=gw_ip))
    nodes.extend(switches)

    # --- routing ---------------------------------------------------------------------------
    static = _static_routes(lab.sites, tunnels)
    nodes = [_with_routes(n, static.get(n.name, ())) for n in nodes]
    draft = Plan(lab.name, tuple(nodes), tuple(links), tuple(tunnels), (), (), (), lab.underlay.subnet,
                 tuple((s.name, s.lan, s.gateway.name) for s in lab.sites))
    pings, walks, warnings = _pings_and_walks(draft)
    captures = _captures(draft, walks)
    return Plan(lab.name, draft.nodes, draft.links, draft.tunnels, tuple(pings), tuple(captures), tuple(walks),
                lab.underlay.subnet, draft.sites, tuple(warnings))


def _need(value: object, where: Where, message: str, problems: Problems) -> None:
    if value is None:
        problems.add(where, message)


def _first_hosts(net: IPv4Network, n: int) -> tuple[IPv4Address, ...]:
    return tuple(IPv4Address(int(net.network_address) + 1 + i) for i in range(n))


def _segment(name: str, members: list[tuple[str, str]], mtu: int, switch: str, image: str,
             links: list[Link], switches: list[Node], peers: dict[tuple[str, str], str],
             names: set[str], where: Where, problems: Problems) -> None:
    """Two members get one veth; more get a Linux bridge node, as a switch would."""
    if len(members) < 2:
        return
    if len(members) == 2:
        (an, ai), (bn, bi) = members
        links.append(Link(f"{an}:{ai}", f"{bn}:{bi}", mtu, name))
        peers[(an, ai)], peers[(bn, bi)] = f"{bn}:{bi}", f"{an}:{ai}"
        return
    if switch in names:
        problems.add(where, f"the switch node {switch!r} clabgen adds for segment {name} clashes with a node name")
        return
    ports = []
    for i, (n, ifname) in enumerate(members, start=1):
        port = f"eth{i}"
        links.append(Link(f"{n}:{ifname}", f"{switch}:{port}", mtu, name))
        peers[(n, ifname)] = f"{switch}:{port}"
        ports.append(Iface(port, "switchport", None, mtu, f"{n}:{ifname}"))
    execs = ("ip link add br0 type bridge", "ip link set br0 up",
             *(c for p in ports for c in (f"ip link set {p.name} master br0", f"ip link set {p.name} up")))
    switches.append(Node(switch, "switch", None, "linux", ClabNode("linux", image, exec=execs), tuple(ports)))


def _static_routes(sites: tuple[Site, ...], tunnels: list[Tunnel]) -> dict[str, tuple[StaticRoute, ...]]:
    """Shortest path over the tunnel graph: each gateway routes every remote LAN via its first hop."""
    adj: dict[str, list[TunnelEnd]] = {}
    for t in tunnels:
        for e in t.ends:
            adj.setdefault(e.node, []).append(e)
    routes: dict[str, tuple[StaticRoute, ...]] = {}
    for site in sites:
        src = site.gateway.name
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
        out = []
        for other in sites:
            hop = first.get(other.gateway.name)
            if other is site or hop is None:
                continue
            peer_addr = next(x.address.ip for t in tunnels for x in t.ends
                             if x.node == hop.peer_node and x.ifname == hop.peer_ifname)
            out.append(StaticRoute(other.lan, peer_addr, hop.ifname))
        routes[src] = tuple(out)
    return routes


def _with_routes(node: Node, static: tuple[StaticRoute, ...]) -> Node:
    routes: list[Route] = []
    for i in node.interfaces:
        if i.address is not None:
            routes.append(Route(str(i.address.network), i.name, src=str(i.address.ip)))
    if node.role == "server" and node.gateway is not None:
        routes.append(Route("default", node.interfaces[0].name, via=str(node.gateway), proto="boot", scope="universe"))
    for r in static:
        routes.append(Route(str(r.prefix), r.dev, via=str(r.next_hop), proto="static", scope="universe",
                            metric=STATIC_METRIC))
    routes.sort(key=lambda r: (r.dst != "default", int(r.network().network_address), r.network().prefixlen))
    return Node(node.name, node.role, node.site, node.platform, node.clab, node.interfaces, node.tunnels,
                static, tuple(routes), node.gateway, node.tunnel_mtu_in_config)


def lookup(node: Node, dst: IPv4Address) -> Route | None:
    """Longest-prefix match over the node's expected routes."""
    best = None
    for r in node.routes:
        if dst in r.network() and (best is None or r.network().prefixlen > best.network().prefixlen):
            best = r
    return best


def _owner(plan: Plan, addr: IPv4Address) -> tuple[Node, Iface] | None:
    for n in plan.nodes:
        for i in n.interfaces:
            if i.address is not None and i.address.ip == addr and i.role != "tunnel":
                return n, i
    return None


def trace(plan: Plan, src: str, dst: IPv4Address, limit: int = 32) -> tuple[list[Hop], int] | None:
    """Follow the expected routes hop by hop; returns the hops and the routers crossed, or None."""
    node = plan.node(src)
    in_if: str | None = None
    hops: list[Hop] = []
    routers = 0
    for _ in range(limit):
        if any(i.address is not None and i.address.ip == dst for i in node.interfaces):
            hops.append(Hop(node.name, in_if, None, None, "delivered"))
            return hops, routers
        route = lookup(node, dst)
        if route is None:
            return None
        if hops:
            routers += 1
        tun = next((e for e in node.tunnels if e.ifname == route.dev), None)
        if tun is not None:
            ttype = next(t for t in plan.tunnels if tun in t.ends)
            outer = lookup(node, tun.remote)
            note = (f"{route.dev} ({ttype.type}) adds the outer header {tun.local} > {tun.remote} "
                    f"(IP protocol {ttype.ip_proto}); the outer packet matches "
                    f"`{outer.text() if outer else '?'}` and leaves on {outer.dev if outer else '?'}")
            hops.append(Hop(node.name, in_if, route.text(), route.dev, note))
            peer = plan.node(tun.peer_node)
            hops.append(Hop(peer.name, tun.underlay_if, None, tun.peer_ifname,
                            f"removes the outer header; the inner packet arrives on {tun.peer_ifname}"))
            node, in_if = peer, tun.peer_ifname
            continue
        next_ip = IPv4Address(route.via) if route.via else dst
        owner = _owner(plan, next_ip)
        if owner is None:
            return None
        hops.append(Hop(node.name, in_if, route.text(), route.dev))
        node, in_if = owner[0], owner[1].name
    return None


def _pings_and_walks(plan: Plan) -> tuple[list[Ping], list[Walk], list[str]]:
    pings: list[Ping] = []
    walks: list[Walk] = []
    warnings: list[str] = []
    servers = plan.servers
    for a in servers:
        for b in servers:
            if a is b or b.address is None or a.address is None:
                continue
            there = trace(plan, a.name, b.address)
            back = trace(plan, b.name, a.address)
            if there is None or back is None:
                warnings.append(f"{a.name} cannot reach {b.name}: no tunnel path between their sites")
                continue
            pings.append(Ping(a.name, b.name, b.address, INITIAL_TTL - back[1]))
            walks.append(Walk(a.name, b.name, a.address, b.address, tuple(there[0])))
    for t in plan.tunnels:
        for e in t.ends:
            peer = next(x for x in t.ends if x is not e)
            pings.append(Ping(e.node, peer.node, peer.address.ip, INITIAL_TTL, "tunnel"))
    return pings, walks, warnings


def _captures(plan: Plan, walks: list[Walk]) -> list[Capture]:
    """One capture per tunnel: a server ping whose path enters that tunnel."""
    out = []
    for t in plan.tunnels:
        for w in walks:
            hop = next((h for h in w.hops if any(h.node == e.node and h.out_if == e.ifname and h.route
                                                   for e in t.ends)), None)
            if hop is None:
                continue
            end = next(e for e in t.ends if e.node == hop.node)
            src = plan.node(w.src)
            out.append(Capture(t.name, end.node, end.underlay_if, end.ifname, w.src, src.interfaces[0].name,
                               w.src, w.dst_address, end.local, end.remote, t.ip_proto, w.src_address,
                               PING_PAYLOAD_FRAME, PING_PAYLOAD_FRAME + t.overhead))
            break
    return out
