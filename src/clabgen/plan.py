"""Pure derivation Model -> Plan, in phases: every address, interface, tunnel and route is decided here.

Each phase takes what earlier phases returned (frozen values) and returns a new value:
platforms -> addresses -> interface names -> tunnels -> segments (links, switches) -> nodes ->
routing (the registry entry the intent names) -> expected routes -> pings and packet walks ->
captures. Templates and the lab contract only print what the plan holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from . import checks, plan_crypto, platforms, routing
from .errors import Problems, Where
from .model import Lab
from .model import Tunnel as ModelTunnel
from .planned import (
    CLAB_DEFAULT_MTU,
    Capture,
    ClabNode,
    Crypto,
    Hop,
    HostServer,
    Iface,
    Link,
    Node,
    Ping,
    Plan,
    Policy,
    Route,
    Scenario,
    SiteInfo,
    Tunnel,
    TunnelEnd,
    Walk,
    policy_ifname,
)
from .platforms import Platform
from .tunnels import tunnel_type

__all__ = ["CLAB_DEFAULT_MTU", "INITIAL_TTL", "LAN_IF", "SERVER_IF", "UNDERLAY_IF", "Plan", "build", "lookup",
           "trace"]

INITIAL_TTL = 64          # Linux default for ping
LAN_IF, UNDERLAY_IF, SERVER_IF = "eth1", "eth2", "net0"
PING_PAYLOAD_FRAME = 98   # 14 Ethernet + 20 IP + 8 ICMP + 56 data: a default ping in the LAN
ETH_HLEN = 14


@dataclass(frozen=True)
class Addressing:
    lan: Mapping[str, IPv4Address]        # every gateway and server: its LAN address
    underlay: Mapping[str, IPv4Address]   # every gateway, when there is an underlay


@dataclass(frozen=True)
class IfNames:
    lan: Mapping[str, str]                # every gateway and server: its LAN interface
    underlay: Mapping[str, str]           # every gateway


@dataclass(frozen=True)
class Segments:
    links: tuple[Link, ...]
    switches: tuple[Node, ...]
    peers: Mapping[tuple[str, str], str]  # (node, ifname) -> "node:ifname" at the other end


class _Pool:
    """Hands out host addresses of a subnet in order, skipping those given explicitly."""

    def __init__(self, net: IPv4Network, taken: Iterable[IPv4Address]) -> None:
        self.net = net
        self.taken = set(taken)
        self._end = int(net.broadcast_address)
        # where the last search from each offset stopped (all below it are taken; taken only grows):
        # a 200-site underlay is not walked from its start for every gateway
        self._resume: dict[int, int] = {}

    def take(self, offset: int) -> IPv4Address | None:
        value = self._resume.get(offset, int(self.net.network_address) + offset)
        while value < self._end:
            addr = IPv4Address(value)
            if addr not in self.taken:
                self.taken.add(addr)
                self._resume[offset] = value + 1
                return addr
            value += 1
        self._resume[offset] = value
        return None


def build(lab: Lab, *, scenarios: bool = True, drafted: Callable[[Plan], object] | None = None,
          laid_out: Callable[[Plan], object] | None = None) -> Plan:
    """Derive the whole lab; raise ClabgenError (pointing into the intent) if derivation fails.
    Without `scenarios` the fault predictions are left out (validate needs only the warnings).
    `laid_out` is given a plan whose nodes have no routes yet (the topology: render starts drawing
    the picture there); `drafted` the plan once its nodes, links and tunnels are final, before its
    checks (pings, walks, faults) are derived (render starts the gateways' files there)."""
    problems = Problems()
    plats = {s.gateway.name: platforms.load(s.gateway.platform or lab.defaults.gateway_platform) for s in lab.sites}
    addressing = _addresses(lab, problems)
    ifnames = _ifnames(lab)
    tunnels = _tunnels(lab, addressing, ifnames, problems)
    segments = _segments(lab, ifnames, problems)
    problems.raise_if_any()
    sites = tuple(SiteInfo(s.name, s.lan, s.gateway.name, ifnames.lan[s.gateway.name]) for s in lab.sites)
    protocol = routing.get(lab.routing.type)
    rinput = _routing_input(lab, plats, sites, tunnels, dynamic=protocol.dynamic)
    declared = protocol.plan(rinput)
    nodes = _gateways(lab, plats, addressing, ifnames, tunnels, segments, declared, rinput)
    nodes += _servers(lab, addressing, ifnames, segments) + segments.switches
    draft = Plan(lab.name, nodes, segments.links, tunnels, (), (), (), lab.underlay.subnet, sites, lab.routing.type,
                 declared.adjacencies)
    if laid_out is not None:
        laid_out(draft)
    learned = protocol.routes(rinput, declared)
    draft = replace(draft, nodes=tuple(_with_routes(n, learned.get(n.name, ())) for n in nodes))
    if drafted is not None:
        drafted(draft)
    usage: Usage = {}
    index = Forwarding(draft)
    pings, walks, warnings, lost = _pings_and_walks(draft, usage=usage if scenarios else None, index=index)
    faults = _scenarios(draft, protocol, rinput, declared, learned, pings, usage, lost, index) if scenarios else ()
    return replace(draft, pings=tuple(pings), walks=tuple(walks), captures=_captures(draft, walks),
                   scenarios=faults, warnings=tuple(warnings))


def _routing_input(lab: Lab, plats: Mapping[str, Platform], sites: tuple[SiteInfo, ...], tunnels: tuple[Tunnel, ...],
                   *, dynamic: bool) -> routing.RoutingInput:
    """Loopbacks (router IDs) and AS numbers for dynamic routing: explicit ones stay, the rest are
    host 1, 2, ... of `routing.loopbacks` and `as_base` + site index, in site order."""
    loopbacks: dict[str, IPv4Interface] = {}
    if dynamic:
        pool = _Pool(lab.routing.loopbacks, [s.gateway.loopback for s in lab.sites if s.gateway.loopback])
        for s in lab.sites:
            addr = s.gateway.loopback or pool.take(1) or lab.routing.loopbacks.network_address
            loopbacks[s.gateway.name] = IPv4Interface(f"{addr}/32")
    asns = {s.gateway.name: s.gateway.asn or lab.routing.as_base + i for i, s in enumerate(lab.sites)}
    facts = {}
    for gw, plat in plats.items():
        f = plat.facts.static_routes
        facts[gw] = routing.KernelFacts(f.proto, f.metric) if f else routing.KernelFacts()
    return routing.RoutingInput(sites, tunnels, lab.routing, loopbacks, asns, facts)


# --- phases -----------------------------------------------------------------------------------


def _addresses(lab: Lab, problems: Problems) -> Addressing:
    """Explicit addresses stay; the rest come from each LAN (gateway .1, servers from .10 or .2)
    and from the underlay (from first_host on), in intent order."""
    lan: dict[str, IPv4Address] = {}
    for site in lab.sites:
        explicit = [a for a in (site.gateway.address, *(s.address for s in site.servers)) if a]
        pool = _Pool(site.lan, explicit)
        gw_addr = site.gateway.address or pool.take(1)
        _need(gw_addr, site.at("lan"), f"{site.lan} has no free address for gateway {site.gateway.name}", problems)
        lan[site.gateway.name] = gw_addr or site.lan.network_address
        for srv in site.servers:
            addr = srv.address or pool.take(10 if site.lan.num_addresses > 12 else 2)
            _need(addr, srv.where, f"{site.lan} has no free address left for {srv.name}", problems)
            lan[srv.name] = addr or site.lan.network_address
    underlay: dict[str, IPv4Address] = {}
    if _needs_underlay(lab):
        pool = _Pool(lab.underlay.subnet, [s.gateway.underlay_address for s in lab.sites if s.gateway.underlay_address])
        for site in lab.sites:
            addr = site.gateway.underlay_address or pool.take(lab.underlay.first_host)
            _need(addr, lab.underlay.at("subnet"), f"{lab.underlay.subnet} has no free address for {site.gateway.name}",
                  problems)
            underlay[site.gateway.name] = addr or lab.underlay.subnet.network_address
    return Addressing(lan, underlay)


def _ifnames(lab: Lab) -> IfNames:
    lan = {s.gateway.name: s.gateway.lan_ifname or LAN_IF for s in lab.sites}
    lan.update({srv.name: srv.ifname or SERVER_IF for s in lab.sites for srv in s.servers})
    underlay = {s.gateway.name: s.gateway.underlay_ifname or UNDERLAY_IF for s in lab.sites}
    return IfNames(lan, underlay)


def _tunnels(lab: Lab, addressing: Addressing, ifnames: IfNames, problems: Problems) -> tuple[Tunnel, ...]:
    """Tunnel interfaces: explicit names first, then tun0, tun1, ... per gateway, skipping those;
    inner addresses: explicit, else the subnet's first two hosts; MTU: explicit, else underlay - overhead."""
    taken: dict[str, set[str]] = {}
    for t in lab.tunnels:
        for node, ifname in zip(t.endpoints, t.ifnames or ()):
            taken.setdefault(node, set()).add(ifname)
    count: dict[tuple[str, str], int] = {}     # (node, prefix): tun0, tun1 ...; wg0, wg1 ... (WireGuard)
    crypto = plan_crypto.crypto(lab, problems)
    out: list[Tunnel] = []
    for n, t in enumerate(lab.tunnels):
        ttype = tunnel_type(t.type)
        a, b = t.endpoints
        if t.policy:
            out.append(_policy_tunnel(lab, t, addressing, ifnames, crypto.get(n)))
            continue
        hosts = t.addresses or _first_hosts(t.subnet, 2)
        ifs = []
        for i, node in enumerate((a, b)):
            if t.ifnames:
                ifs.append(t.ifnames[i])
                continue
            key = (node, ttype.ifname_prefix)
            while f"{key[1]}{count.get(key, 0)}" in taken.get(node, ()):
                count[key] = count.get(key, 0) + 1
            ifs.append(f"{key[1]}{count.get(key, 0)}")
            count[key] = count.get(key, 0) + 1
        mtu = checks.tunnel_mtu(lab, t)
        under = addressing.underlay
        ends = (
            TunnelEnd(a, ifs[0], under[a], under[b], IPv4Interface(f"{hosts[0]}/{t.subnet.prefixlen}"),
                      b, ifs[1], ifnames.underlay[a]),
            TunnelEnd(b, ifs[1], under[b], under[a], IPv4Interface(f"{hosts[1]}/{t.subnet.prefixlen}"),
                      a, ifs[0], ifnames.underlay[b]),
        )
        out.append(Tunnel(t.name or f"{a}-{b}-{t.type}", t.type, ttype.ip_proto, ttype.overhead, mtu,
                          t.mtu is not None, t.subnet, ends, crypto.get(n)))
    return tuple(out)


def _policy_tunnel(lab: Lab, t: ModelTunnel, addressing: Addressing, ifnames: IfNames,
                   crypto: Crypto | None) -> Tunnel:
    """Policy-based IPsec: ends between the underlay addresses, no interface or inner addresses."""
    a, b = t.endpoints
    name = t.name or f"{a}-{b}-{t.type}"
    under, none = addressing.underlay, IPv4Interface("0.0.0.0/32")
    key = policy_ifname(name)
    ends = (TunnelEnd(a, key, under[a], under[b], none, b, key, ifnames.underlay[a]),
            TunnelEnd(b, key, under[b], under[a], none, a, key, ifnames.underlay[b]))
    ttype = tunnel_type(t.type, policy=True)
    return Tunnel(name, t.type, ttype.ip_proto, ttype.overhead, checks.tunnel_mtu(lab, t), False, t.subnet, ends,
                  crypto, policy=True)


def _segments(lab: Lab, ifnames: IfNames, problems: Problems) -> Segments:
    """Each site's LAN, then the underlay (the seed's link order); more than two members get a switch."""
    names = {n for s in lab.sites for n in (s.gateway.name, *(x.name for x in s.servers))}
    links: list[Link] = []
    switches: list[Node] = []
    peers: dict[tuple[str, str], str] = {}
    image = lab.defaults.server_image
    for site in lab.sites:
        members = [(n, ifnames.lan[n]) for n in (site.gateway.name, *(s.name for s in site.servers))]
        _segment(f"lan-{site.name}", members, CLAB_DEFAULT_MTU, f"sw-{site.name}", image,
                 links, switches, peers, names, site.where, problems)
    if _needs_underlay(lab):
        members = [(s.gateway.name, ifnames.underlay[s.gateway.name]) for s in lab.sites]
        _segment("underlay", members, lab.underlay.mtu, "sw-underlay", image,
                 links, switches, peers, names, lab.underlay.where, problems)
    return Segments(tuple(links), tuple(switches), peers)


def _segment(name: str, members: list[tuple[str, str]], mtu: int, switch: str, image: str,
             links: list[Link], switches: list[Node], peers: dict[tuple[str, str], str],
             names: set[str], where: Where, problems: Problems) -> None:
    """Two members get one veth; one or more than two get a Linux bridge node, as a switch would
    (a LAN with only its gateway still needs a cable plugged in, or its interface would not exist)."""
    if not members:
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


def _gateways(lab: Lab, plats: Mapping[str, Platform], addressing: Addressing, ifnames: IfNames,
              tunnels: tuple[Tunnel, ...], segments: Segments, declared: routing.RoutingPlan,
              rinput: routing.RoutingInput) -> tuple[Node, ...]:
    ends_of: dict[str, list[tuple[Tunnel, TunnelEnd]]] = {}
    for t in tunnels:
        for e in t.ends:
            ends_of.setdefault(e.node, []).append((t, e))
    out = []
    for site in lab.sites:
        gw = site.gateway
        plat = plats[gw.name]
        facts = plat.facts
        lan_if, under_if = ifnames.lan[gw.name], ifnames.underlay[gw.name]
        ifaces = [Iface(lan_if, "lan", IPv4Interface(f"{addressing.lan[gw.name]}/{site.lan.prefixlen}"),
                        CLAB_DEFAULT_MTU, segments.peers.get((gw.name, lan_if)), facts.ethernet_mtu_in_config)]
        if gw.name in addressing.underlay:
            ifaces.append(Iface(under_if, "underlay",
                                IPv4Interface(f"{addressing.underlay[gw.name]}/{lab.underlay.subnet.prefixlen}"),
                                lab.underlay.mtu, segments.peers.get((gw.name, under_if)),
                                facts.ethernet_mtu_in_config or lab.underlay.mtu != CLAB_DEFAULT_MTU))
        mine = ends_of.get(gw.name, [])
        ifaces += [Iface(e.ifname, "tunnel", e.address, t.mtu, None,
                         facts.tunnel_mtu_in_config or t.mtu_explicit or tunnel_type(t.type).mtu_in_config)
                   for t, e in mine if not t.policy]
        startup = plat.startup_output
        config = startup.path.format(lab=lab.name, node=gw.name) if startup else None
        binds = tuple(b.format(node=gw.name, lab=lab.name) for b in facts.clab.binds)
        if config and facts.startup_config:
            binds += (f"./{config}:{facts.startup_config}",)
        key_output, key_bind = _wireguard_key_file(plat, gw.name, lab.name, [t for t, _ in mine])
        binds += key_bind
        image = gw.image or lab.defaults.gateway_image or facts.default_image or ""
        servers = list(site.servers)
        host = tuple(HostServer(s.name, f"{lab.name}-{s.name}", f"br-int{k}",
                                IPv4Interface(f"{addressing.lan[s.name]}/{site.lan.prefixlen}"),
                                addressing.lan[gw.name]) for k, s in enumerate(servers))
        out.append(Node(gw.name, "gateway", site.name, plat.name,
                        ClabNode(facts.clab.kind, image, facts.clab.cmd, binds),
                        tuple(ifaces), tuple(e for _, e in mine), declared.static.get(gw.name, ()),
                        config=config, host_servers=host, loopback=rinput.loopbacks.get(gw.name),
                        ospf=declared.ospf.get(gw.name), bgp=declared.bgp.get(gw.name),
                        tunnel_ttl=declared.tunnel_ttl, wireguard_key_output=key_output,
                        policies=declared.policies.get(gw.name, ())))
    return tuple(out)


def _wireguard_key_file(plat: Platform, node: str, lab: str, tunnels: list[Tunnel]) -> tuple[str | None, tuple[str, ...]]:
    """A platform that reads the WireGuard key from a file (VyOS 1.2) gets it bound there: the rendered
    lab-only key file, or the user's own file when its contents may not be written."""
    key = next((t.crypto.end(node).private_key for t in tunnels if t.crypto and t.crypto.end(node).private_key), None)
    target = plat.facts.wireguard_key_file
    if key is None or target is None:
        return None, ()
    if key.value is not None:
        out = next((o.path for o in plat.outputs if o.when == "wireguard_key_output"), "")
        path = out.format(node=node, lab=lab)
        return path, (f"./{path}:{target}:ro",)
    src = key.file or ""
    return None, (f"{src if src.startswith('/') else './' + src}:{target}:ro",)


def _servers(lab: Lab, addressing: Addressing, ifnames: IfNames, segments: Segments) -> tuple[Node, ...]:
    out = []
    for site in lab.sites:
        gw_ip = addressing.lan[site.gateway.name]
        for srv in site.servers:
            ifname = ifnames.lan[srv.name]
            addr = IPv4Interface(f"{addressing.lan[srv.name]}/{site.lan.prefixlen}")
            execs = (f"ip addr add {addr} dev {ifname}", f"ip route replace default via {gw_ip}")
            out.append(Node(srv.name, "server", site.name, "linux",
                            ClabNode("linux", srv.image or lab.defaults.server_image, exec=execs),
                            (Iface(ifname, "lan", addr, CLAB_DEFAULT_MTU, segments.peers.get((srv.name, ifname))),),
                            gateway=gw_ip))
    return tuple(out)


_PREFIX_KEYS: dict[str, tuple[int, int]] = {}
_ROUTE_ORDER: dict[str, tuple[bool, int, int]] = {}


def prefix_key(dst: str) -> tuple[int, int]:
    """(network as an integer, length) of a route's destination ("default" is 0.0.0.0/0), parsed
    once per distinct text: a big lab's tables repeat the same LANs on every gateway."""
    key = _PREFIX_KEYS.get(dst)
    if key is None:
        net = IPv4Network("0.0.0.0/0" if dst == "default" else dst)
        key = _PREFIX_KEYS[dst] = (int(net.network_address), net.prefixlen)
    return key


def _route_order(r: Route) -> tuple[bool, int, int]:
    """A table's order: the default route first, then by network and length."""
    key = _ROUTE_ORDER.get(r.dst)
    if key is None:
        key = _ROUTE_ORDER[r.dst] = (r.dst != "default", *prefix_key(r.dst))
    return key


def _with_routes(node: Node, learned: tuple[Route, ...], down: frozenset[str] = frozenset()) -> Node:
    """The node's kernel routing table: connected routes (none for an interface that is down), a
    server's default route, and what its routing configuration puts there (the protocol's routes)."""
    routes: list[Route] = []
    for i in node.interfaces:
        if i.address is not None and i.name not in down:
            routes.append(Route(str(i.address.network), i.name, src=str(i.address.ip)))
    if node.role == "server" and node.gateway is not None:
        routes.append(Route("default", node.interfaces[0].name, via=str(node.gateway), proto="boot", scope="universe"))
    routes.extend(learned)
    routes.sort(key=_route_order)
    return replace(node, routes=tuple(routes))


MAX_SCENARIOS = 64   # single faults predicted in the contract; larger labs get none (docs/intent.md)


def _scenarios(plan: Plan, protocol: routing.RoutingProtocol, rinput: routing.RoutingInput,
               declared: routing.RoutingPlan, learned: Mapping[str, tuple[Route, ...]], base: list[Ping],
               usage: Usage, lost: list[tuple[str, str]], index: Forwarding) -> tuple[Scenario, ...]:
    """For each tunnel, then each gateway's underlay link: the routes and pings once it is down
    (only the nodes whose table changes are listed). A ping whose paths avoid what is down keeps
    its TTL (taking a link away makes no path shorter), so only the others are followed again.
    A node whose links are up and whose learned routes are the same keeps its Node (and its part of
    the forwarding index): a fault costs what it changes, not the whole lab again."""
    faults: list[tuple[str, frozenset[str], frozenset[tuple[str, str]]]] = []
    tunnels_of: dict[str, list[str]] = {}
    for t in plan.tunnels:
        if not t.policy:          # no interface to take down (clabgen fault)
            faults.append((f"tunnel {t.name} down", frozenset({t.name}), frozenset((e.node, e.ifname) for e in t.ends)))
        for e in t.ends:
            tunnels_of.setdefault(e.node, []).append(t.name)
    for g in plan.gateways:
        under = next((i.name for i in g.interfaces if i.role == "underlay"), None)
        if under is None:
            continue
        cut = frozenset(tunnels_of.get(g.name, ()))
        faults.append((f"underlay {g.name}:{under} down", cut, frozenset({(g.name, under)})))
    if len(faults) > MAX_SCENARIOS:
        return ()
    rank = {n.name: i for i, n in enumerate(plan.servers)}
    out = []
    for name, down, devs in faults:
        now = protocol.routes(rinput, declared, down, devs)
        down_on: dict[str, set[str]] = {}
        for node, ifname in devs:
            down_on.setdefault(node, set()).add(ifname)
        nodes = tuple(n if n.name not in down_on and now.get(n.name, ()) == learned.get(n.name, ()) else
                      _with_routes(n, now.get(n.name, ()), frozenset(down_on.get(n.name, ()))) for n in plan.nodes)
        changed = tuple((n.name, n.routes) for n, old in zip(nodes, plan.nodes) if n is not old and n.routes != old.routes)
        after = replace(plan, nodes=nodes)
        touched = {pair for pair, used in usage.items() if used & down}
        redone, _, _, unreachable = _pings_and_walks(after, down, walks_too=False, only=touched,
                                                     index=Forwarding(after, reuse=index))
        again = {(p.src, p.dst): p for p in redone if p.kind == "server"}
        pings = [again.get((p.src, p.dst), p) if (p.src, p.dst) in touched else p for p in base if p.kind == "server"]
        gone_now = set(unreachable)
        pings = [p for p in pings if (p.src, p.dst) not in gone_now]
        pings += [p for p in redone if p.kind == "tunnel"]
        gone = sorted(gone_now | set(lost), key=lambda pair: (rank[pair[0]], rank[pair[1]]))
        out.append(Scenario(name, tuple(sorted(down)), changed, tuple(pings), tuple(gone)))
    return tuple(out)


def _needs_underlay(lab: Lab) -> bool:
    return len(lab.sites) > 1


def _need(value: object, where: Where, message: str, problems: Problems) -> None:
    if value is None:
        problems.add(where, message)


def _first_hosts(net: IPv4Network, n: int) -> tuple[IPv4Address, ...]:
    """The first n hosts: from .1, or from the network address of a /31 (both its addresses are hosts)."""
    first = int(net.network_address) + (0 if net.prefixlen == 31 else 1)
    return tuple(IPv4Address(first + i) for i in range(n))


# --- following packets through the expected routes ------------------------------------------------


def lookup(node: Node, dst: IPv4Address) -> Route | None:
    """Longest-prefix match over the node's expected routes."""
    best = None
    for r in node.routes:
        if dst in r.network and (best is None or r.network.prefixlen > best.network.prefixlen):
            best = r
    return best


class Forwarding:
    """The plan's forwarding state indexed once: longest-prefix match per node by prefix length,
    each node's own addresses, who answers a next hop, which interface is a tunnel. Following every
    ping of a large lab stays linear in its hops instead of scanning route lists."""

    def __init__(self, plan: Plan, reuse: Forwarding | None = None) -> None:
        """`reuse`: the index of a plan with the same nodes and interfaces, whose unchanged nodes
        (the same Node objects) keep their tables (a fault scenario changes a few nodes)."""
        self.plan = plan
        self.tables: dict[str, list[tuple[int, dict[int, Route]]]] = {}
        self.own: dict[str, set[int]] = {}
        self.owners: dict[int, tuple[Node, Iface]] = {}
        self._parsed: dict[str, int] = {}
        self.tunnel_of: dict[tuple[str, str], Tunnel] = {}
        self.policies: dict[str, list[tuple[int, dict[int, tuple[Policy, Tunnel]]]]] = {}
        if reuse is not None:
            self.own, self.owners, self.tunnel_of, self._parsed = reuse.own, reuse.owners, reuse.tunnel_of, reuse._parsed
            self.policies = reuse.policies
            for n in plan.nodes:
                self.tables[n.name] = reuse.tables[n.name] if reuse.plan.node(n.name) is n else self._table(n)
            return
        for n in plan.nodes:
            self.tables[n.name] = self._table(n)
            self.own[n.name] = {int(i.address.ip) for i in n.interfaces if i.address is not None}
            for i in n.interfaces:
                if i.address is not None and i.role != "tunnel":
                    self.owners.setdefault(int(i.address.ip), (n, i))
        self.tunnel_of.update({(e.node, e.ifname): t for t in plan.tunnels for e in t.ends if not t.policy})
        by_name = {t.name: t for t in plan.tunnels if t.policy}
        for n in plan.nodes:
            if n.policies:
                self.policies[n.name] = _by_length((net, (p, by_name[p.tunnel])) for p in n.policies for net in p.remote)

    def policy(self, node: str, dst: int) -> tuple[Policy, Tunnel] | None:
        """The policy-based IPsec tunnel whose selectors take packets to dst (charon's routes in
        table 220 come before the main table)."""
        for plen, nets in self.policies.get(node, ()):
            hit = nets.get(dst & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF))
            if hit is not None:
                return hit
        return None

    @staticmethod
    def _table(n: Node) -> list[tuple[int, dict[int, Route]]]:
        by_len: dict[int, dict[int, Route]] = {}
        for r in n.routes:
            start, plen = prefix_key(r.dst)
            by_len.setdefault(plen, {}).setdefault(start, r)
        return sorted(by_len.items(), reverse=True)

    def address(self, text: str) -> int:
        known = self._parsed.get(text)
        if known is None:
            known = self._parsed[text] = int(IPv4Address(text))
        return known

    def lookup(self, node: str, dst: int) -> Route | None:
        for plen, routes in self.tables[node]:
            route = routes.get(dst & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF))
            if route is not None:
                return route
        return None


def _by_length(items: Iterable[tuple[IPv4Network, tuple[Policy, Tunnel]]]) -> list[tuple[int, dict[int, tuple[Policy, Tunnel]]]]:
    by_len: dict[int, dict[int, tuple[Policy, Tunnel]]] = {}
    for net, value in items:
        by_len.setdefault(net.prefixlen, {}).setdefault(int(net.network_address), value)
    return sorted(by_len.items(), reverse=True)


def _owners(plan: Plan) -> dict[IPv4Address, tuple[Node, Iface]]:
    """Who answers on each (non-tunnel) address: the next hop of a route is looked up here."""
    return {IPv4Address(a): o for a, o in Forwarding(plan).owners.items()}


def trace(plan: Plan, src: str, dst: IPv4Address, limit: int = 32,
          index: Forwarding | None = None) -> tuple[list[Hop], int] | None:
    """Follow the expected routes hop by hop (the first of equal-cost next hops); the hops and the
    routers crossed, or None when the packet does not arrive."""
    found = traces(plan, src, dst, limit, index, most=1)
    return found[0] if found else None


def traces(plan: Plan, src: str, dst: IPv4Address, limit: int = 32, index: Forwarding | None = None,
           most: int = 16, detail: bool = True) -> list[tuple[list[Hop], int]]:
    """Every path the expected routes allow (equal-cost routes branch; at most `most` of them).
    Without `detail` the hops carry no route text or notes (counting routers is all a ping needs).
    The packet's source is src's first address (a policy-based IPsec tunnel checks it)."""
    fw = index if index is not None else Forwarding(plan)
    target = int(dst)
    first = plan.node(src).address
    source = int(first) if first is not None else None
    done: list[tuple[list[Hop], int]] = []

    def walk(node: Node, in_if: str | None, hops: list[Hop]) -> None:
        if len(done) >= most or len(hops) > limit:
            return
        if target in fw.own[node.name]:
            path = [*hops, Hop(node.name, in_if, None, None, "delivered")]
            done.append((path, sum(h.forwards for h in path)))
            return
        policy = fw.policy(node.name, target) if fw.policies else None
        if policy is not None:
            crossed = _policy_hops(plan, fw, node, in_if, bool(hops), policy, source, dst, detail)
            if crossed is not None:
                walk(plan.node(crossed[1].node), crossed[1].out_if, [*hops, *crossed])
            return
        route = fw.lookup(node.name, target)
        if route is None:
            return
        forwards = bool(hops)
        for via, dev in _branches(route):
            tunnel = fw.tunnel_of.get((node.name, dev))
            if tunnel is not None:
                end = tunnel.end(node.name)
                outer = fw.lookup(node.name, int(end.remote))
                peer = plan.node(end.peer_node)
                if outer is None or fw.lookup(peer.name, int(end.remote)) is None:
                    continue          # the underlay cannot carry it (an interface is down)
                if not detail:
                    walk(peer, end.peer_ifname, [*hops, Hop(node.name, in_if, "", dev, "", forwards, tunnel.name),
                                                 Hop(peer.name, end.underlay_if, None, end.peer_ifname)])
                    continue
                note = (f"{dev} ({tunnel.type}) adds the outer header {end.local} > {end.remote} "
                        f"(IP protocol {tunnel.ip_proto}); the outer packet matches "
                        f"`{outer.text()}` and leaves on {outer.dev}")
                walk(peer, end.peer_ifname, [*hops, Hop(node.name, in_if, route.text(), dev, note, forwards,
                                                        tunnel.name),
                                             Hop(peer.name, end.underlay_if, None, end.peer_ifname,
                                                 f"removes the outer header; the inner packet arrives on {end.peer_ifname}")])
                continue
            owner = fw.owners.get(fw.address(via) if via else target)
            if owner is not None:
                walk(owner[0], owner[1].name, [*hops, Hop(node.name, in_if, route.text() if detail else "", dev,
                                                          forwards=forwards)])

    walk(plan.node(src), None, [])
    return done


def _policy_hops(plan: Plan, fw: Forwarding, node: Node, in_if: str | None, forwards: bool,
                 found: tuple[Policy, Tunnel], source: int | None, dst: IPv4Address,
                 detail: bool) -> tuple[Hop, Hop] | None:
    """A packet a policy-based IPsec tunnel takes: ESP to the peer, which decrypts it and routes
    it on (the hop out and the hop in), or None when it is lost: its source is outside the
    policy's local prefixes (charon's route takes it, no security policy matches), or the underlay
    cannot carry ESP to the peer."""
    policy, tunnel = found
    if source is not None and not any(int(net.network_address) <= source <= int(net.broadcast_address)
                                      for net in policy.local):
        return None
    end = tunnel.end(node.name)
    peer = tunnel.peer(end)
    outer = fw.lookup(node.name, int(end.remote))
    if outer is None or fw.lookup(peer.node, int(end.remote)) is None:
        return None
    if not detail:
        return (Hop(node.name, in_if, "", end.underlay_if, "", forwards, tunnel.name),
                Hop(peer.node, peer.underlay_if, None, peer.underlay_if))
    net = next(n for n in policy.remote if dst in n)
    return (Hop(node.name, in_if, f"{net} (IPsec policy {tunnel.name})", outer.dev,
                f"ESP in UDP 4500 {end.local} > {end.remote} carries it encrypted; the outer packet matches "
                f"`{outer.text()}`", forwards, tunnel.name),
            Hop(peer.node, peer.underlay_if, None, peer.underlay_if,
                f"decrypts the ESP packet (its policy for {tunnel.name} lets it in) and routes the inner packet"))


def _branches(route: Route) -> list[tuple[str | None, str]]:
    if route.nexthops:
        return [(h.via, h.dev) for h in route.nexthops]
    return [(route.via, route.dev)]


Usage = dict[tuple[str, str], frozenset[str]]   # (from, to) server pair -> tunnels its paths use

# Up to this many servers the lab predicts (and verify checks) a ping between every two of them;
# more would be quadratic in the contract, the README and verify (a 500-site lab: 250 000 pings).
PING_ALL_SERVERS = 20


def ping_pairs(plan: Plan) -> list[tuple[Node, Node]]:
    """The server pairs the lab pings, in server order (by sender, then receiver).

    Up to PING_ALL_SERVERS servers: every ordered pair. Beyond: a deterministic sample, linear in
    the sites and tunnels (docs/intent.md): every server to and from the hub side (the first
    server of the first site whose gateway ends the most tunnels), each server to the next one in
    server order (the last to the first: spoke to spoke through the hub), and for every tunnel the
    first server of its first end's site to that of its second's (every tunnel carries a ping and
    gets a capture)."""
    servers = plan.servers
    if len(servers) <= PING_ALL_SERVERS:
        return [(a, b) for a in servers for b in servers if a is not b]
    rank = {n.name: i for i, n in enumerate(servers)}
    first_of: dict[str, Node] = {}
    for n in servers:
        first_of.setdefault(n.site or "", n)
    ends: dict[str, int] = {}
    for t in plan.tunnels:
        for e in t.ends:
            ends[e.node] = ends.get(e.node, 0) + 1
    with_servers = [g for g in plan.gateways if (g.site or "") in first_of]
    pairs: set[tuple[int, int]] = set()
    if with_servers:
        hub_gw = max(with_servers, key=lambda g: ends.get(g.name, 0))    # max keeps the first of equals
        hub = rank[first_of[hub_gw.site or ""].name]
        for i in range(len(servers)):
            pairs.update(((i, hub), (hub, i)))
    pairs.update((i, (i + 1) % len(servers)) for i in range(len(servers)))
    site_of = {g.name: g.site or "" for g in plan.gateways}
    for t in plan.tunnels:
        a, b = (first_of.get(site_of.get(e.node, "")) for e in t.ends)
        if a is not None and b is not None:
            pairs.add((rank[a.name], rank[b.name]))
    return [(servers[i], servers[j]) for i, j in sorted(pairs) if i != j]


def _pings_and_walks(plan: Plan, down: frozenset[str] = frozenset(), walks_too: bool = True,
                     usage: Usage | None = None, only: set[tuple[str, str]] | None = None,
                     index: Forwarding | None = None,
                     ) -> tuple[list[Ping], list[Walk], list[str], list[tuple[str, str]]]:
    """Server-to-server pings (reply TTL from the way back; every equal-cost way back's TTL is
    acceptable), their packet walks, and a ping across every tunnel that is up. `usage` collects
    the tunnels each pair's paths use (both ways, every branch); `only` limits the pairs followed."""
    pings: list[Ping] = []
    walks: list[Walk] = []
    warnings: list[str] = []
    unreachable: list[tuple[str, str]] = []
    index = index if index is not None else Forwarding(plan)
    for a, b in ping_pairs(plan):
        if b.address is None or a.address is None or (only is not None and (a.name, b.name) not in only):
            continue
        there = traces(plan, a.name, b.address, index=index, most=1, detail=walks_too)
        back = traces(plan, b.name, a.address, index=index, detail=False)
        if usage is not None:
            paths = traces(plan, a.name, b.address, index=index, detail=False) + back
            usage[(a.name, b.name)] = frozenset(h.tunnel for hops, _ in paths for h in hops if h.tunnel)
        if not there or not back:
            warnings.append(f"{a.name} cannot reach {b.name}: no tunnel path between their sites")
            unreachable.append((a.name, b.name))
            continue
        ttls = sorted({INITIAL_TTL - routers for _, routers in back}, reverse=True)
        pings.append(Ping(a.name, b.name, b.address, ttls[0], alt_ttls=tuple(ttls[1:])))
        walks.append(Walk(a.name, b.name, a.address, b.address, tuple(there[0][0])))
    for t in plan.tunnels:
        if t.name in down or t.policy:
            continue
        for e in t.ends:
            peer = t.peer(e)
            pings.append(Ping(e.node, peer.node, peer.address.ip, INITIAL_TTL, "tunnel"))
    return pings, walks, warnings, unreachable


def _captures(plan: Plan, walks: list[Walk]) -> tuple[Capture, ...]:
    """One capture per tunnel: the first server ping whose path enters that tunnel, with the inner
    TTL it has on the sender's LAN and when it enters the tunnel (after every router before)."""
    first: dict[str, tuple[Walk, int]] = {}     # tunnel -> the first walk entering it, and where
    for w in walks:                             # each walk once, not once per tunnel
        here: set[str] = set()
        multipath = False
        for i, h in enumerate(w.hops):
            multipath = multipath or "nexthop" in (h.route or "")
            name = h.tunnel if h.route else None
            if name is None or name in here:
                continue
            here.add(name)              # only where the walk first enters it counts
            if not multipath:           # equal-cost routes could take the probe elsewhere
                first.setdefault(name, (w, i))
    out = []
    for t in plan.tunnels:
        if t.name in first:
            w, at = first[t.name]
            end = t.end(w.hops[at].node)
            src = plan.node(w.src)
            routers = sum(h.forwards for h in w.hops[:at + 1])
            ttype = tunnel_type(t.type, t.policy)
            out.append(Capture(t.name, end.node, end.underlay_if, "" if t.policy else end.ifname, w.src,
                               src.interfaces[0].name, w.src_address, w.dst_address, end.local, end.remote, t.ip_proto,
                               PING_PAYLOAD_FRAME, ETH_HLEN + ttype.wire_len(PING_PAYLOAD_FRAME - ETH_HLEN, t.mtu,
                                                                      t.crypto.esp_framing if t.crypto else None),
                               INITIAL_TTL,
                               INITIAL_TTL - routers))
    return tuple(out)
