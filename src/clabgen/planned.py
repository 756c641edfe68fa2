"""The plan's values: every address, interface, tunnel, route and check of a lab, frozen.

plan.py derives them from the model in phases; routing protocols (clabgen.routing), the view
for templates and the lab contract read them. Nothing here decides anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from .iproute import route_text

CLAB_DEFAULT_MTU = 9500   # containerlab's veth MTU


@dataclass(frozen=True)
class Iface:
    name: str
    role: str                        # lan | underlay | tunnel | switchport
    address: IPv4Interface | None
    mtu: int
    peer: str | None = None          # "node:ifname" at the other end of the veth
    mtu_in_config: bool = False      # a gateway's config writes the MTU out


@dataclass(frozen=True)
class NextHop:
    via: str
    dev: str


@dataclass(frozen=True)
class Route:
    """A route as `ip route show` prints it; an equal-cost route has its next hops in `nexthops`
    (and no dev/via of its own), as the kernel keeps a multipath route."""

    dst: str                         # "default" or a prefix
    dev: str
    via: str | None = None
    proto: str = "kernel"            # kernel | static | boot | ospf | bgp
    scope: str = "link"
    src: str | None = None
    metric: int | None = None
    nexthops: tuple[NextHop, ...] = ()
    cost: int | None = None          # the routing protocol's own metric (OSPF path cost), as FRR's RIB shows it
    as_path: tuple[int, ...] | None = None   # BGP: the best path's AS path

    def text(self) -> str:
        return route_text(self.dst, self.dev, self.via, self.proto, self.scope, self.src, self.metric,
                          tuple((h.via, h.dev) for h in self.nexthops))

    @cached_property
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
class Secret:
    """A key or pre-shared secret. `value` is what rendered files may hold (a lab-only value, or a
    file's when the intent says write_secrets); else `file` says where a deploy reads it (relative
    paths: from the lab's folder) and nothing clabgen writes holds it."""

    value: str | None
    file: str | None = None
    lab_only: bool = False


@dataclass(frozen=True)
class CryptoEnd:
    node: str
    port: int                         # WireGuard: its listen port; IPsec: 4500 (ESP and IKE in UDP)
    private_key: Secret | None = None   # WireGuard: the gateway's private key
    public_key: str | None = None       # WireGuard: its public key (not a secret)


@dataclass(frozen=True)
class Crypto:
    """What an encrypted tunnel adds to its two ends: ports, keys, secrets, proposals."""

    ends: tuple[CryptoEnd, CryptoEnd]
    psk: Secret | None                # WireGuard: optional preshared key; IPsec: the IKE PSK
    keepalive: int | None = None      # WireGuard persistent-keepalive
    mode: str = "gre"                 # IPsec: gre
    ike: tuple[str, str, int, int] = ("aes128gcm128", "sha256", 14, 3600)   # encryption, hash, DH group, lifetime
    esp: tuple[str, str, int, int] = ("aes128gcm128", "sha256", 14, 1800)   # ... PFS group (0: none)
    dpd: tuple[str, int, int] = ("restart", 2, 10)                          # action, interval, timeout

    def end(self, node: str) -> CryptoEnd:
        return self.ends[0] if self.ends[0].node == node else self.ends[1]

    @property
    def esp_framing(self) -> tuple[str, str]:
        """(encryption, hash) of ESP: what its packets' length depends on (tunnels.esp_len)."""
        return self.esp[0], self.esp[1]

    def peer(self, node: str) -> CryptoEnd:
        return self.ends[1] if self.ends[0].node == node else self.ends[0]


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
    crypto: Crypto | None = None      # encrypted tunnels (tunnels.EncryptedType)
    # Policy-based IPsec: no interface or addresses (its ends' ifname is only a key, POLICY_IF);
    # ESP carries the packets the ends' Policy covers.
    policy: bool = False

    def end(self, node: str) -> TunnelEnd:
        return self.ends[0] if self.ends[0].node == node else self.ends[1]

    def peer(self, end: TunnelEnd) -> TunnelEnd:
        return self.ends[1] if end is self.ends[0] else self.ends[0]


def policy_ifname(tunnel: str) -> str:
    """The key a policy-based tunnel's end has where other tunnels have their interface name
    (a blank in it: never a real interface, never printed as one)."""
    return f"policy {tunnel}"


@dataclass(frozen=True)
class Policy:
    """Policy-based IPsec at one end: the prefixes its security policies cover (VyOS `tunnel N
    local/remote prefix`, strongSwan's traffic selectors). A packet from `local` to `remote` goes
    out encrypted to the peer whatever the main table says: charon's routes in table 220 come
    first. The plan derives them from static routing: `remote` is what this end routes over the
    tunnel, `local` what the peer routes over it."""

    tunnel: str
    local: tuple[IPv4Network, ...]
    remote: tuple[IPv4Network, ...]


@dataclass(frozen=True)
class StaticRoute:
    """A route a gateway's configuration declares (`protocols static route`)."""

    prefix: IPv4Network
    next_hop: IPv4Address
    dev: str


class Texts:
    """str() of the objects static routes share (one LAN or next-hop object recurs on every
    gateway of a big lab), each made once. Call it with the object."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    def __call__(self, x: object) -> str:
        known = self._known.get(id(x))
        if known is None:
            known = self._known[id(x)] = str(x)
        return known


@dataclass(frozen=True)
class OspfIface:
    ifname: str
    kind: str                        # tunnel | ethernet | loopback
    area: str
    cost: int | None
    passive: bool
    hello: int | None = None
    dead: int | None = None
    network: str | None = None       # "point-to-point" on tunnels
    bfd: bool = False
    retransmit: int | None = None    # seconds: an LSA dropped as "too recent" comes again this soon


@dataclass(frozen=True)
class OspfConfig:
    router_id: IPv4Address
    areas: tuple[tuple[str, tuple[IPv4Network, ...]], ...]   # area -> `network` statements
    interfaces: tuple[OspfIface, ...]
    spf: tuple[int, int, int] = (0, 50, 500)     # timers throttle spf: delay, initial, max (ms)


@dataclass(frozen=True)
class BgpPeer:
    address: IPv4Address
    remote_as: int
    name: str                        # the peer gateway
    update_source: str | None = None
    next_hop_self: bool = False
    bfd: bool = False


@dataclass(frozen=True)
class BgpConfig:
    asn: int
    router_id: IPv4Address
    peers: tuple[BgpPeer, ...]
    networks: tuple[IPv4Network, ...]
    keepalive: int
    holdtime: int


@dataclass(frozen=True)
class Adjacency:
    """A routing session the plan expects to come up: OSPF Full or BGP Established."""

    node: str
    peer: str
    protocol: str                    # ospf | bgp
    ifname: str                      # the local interface it runs over
    peer_address: IPv4Address        # the neighbour's interface (OSPF) or session (BGP) address
    peer_id: str                     # OSPF: the neighbour's router ID; BGP: its AS


@dataclass(frozen=True)
class ClabNode:
    kind: str
    image: str
    cmd: str | None = None
    binds: tuple[str, ...] = ()
    exec: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostServer:
    """A server as the Linux part-2 script builds it: its own namespace, a veth into the bridge."""

    name: str
    netns: str
    host_if: str
    address: IPv4Interface
    gateway: IPv4Address


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
    config: str | None = None            # a gateway's startup config, relative to the lab dir
    host_servers: tuple[HostServer, ...] = ()   # a gateway's site as the Linux script builds it
    loopback: IPv4Interface | None = None       # dynamic routing: loopback address (= router ID)
    ospf: OspfConfig | None = None
    bgp: BgpConfig | None = None
    tunnel_ttl: int | None = None               # an explicit outer TTL on every tunnel (dynamic routing)
    wireguard_key_output: str | None = None     # the rendered key file VyOS 1.2 reads (lab-relative path)
    policies: tuple[Policy, ...] = ()           # policy-based IPsec tunnels' prefixes (routing: static)

    def iface(self, name: str) -> Iface:
        return next(i for i in self.interfaces if i.name == name)

    def policy_of(self, tunnel: str) -> Policy | None:
        """This gateway's policy for a policy-based IPsec tunnel."""
        return next((p for p in self.policies if p.tunnel == tunnel), None)

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
    forwards: bool = False            # a router passing the packet on (its TTL goes down by one)
    tunnel: str | None = None         # the tunnel the packet enters here


@dataclass(frozen=True)
class Ping:
    src: str
    dst: str
    address: IPv4Address
    ttl: int
    kind: str = "server"             # server | tunnel
    alt_ttls: tuple[int, ...] = ()   # equal-cost paths of other lengths: the reply may come back on one


@dataclass(frozen=True)
class Capture:
    tunnel: str
    node: str
    iface: str
    tunnel_if: str
    lan_node: str
    lan_if: str
    src_address: IPv4Address
    dst_address: IPv4Address
    outer_src: IPv4Address
    outer_dst: IPv4Address
    ip_proto: int
    lan_frame_len: int
    underlay_frame_len: int
    lan_ttl: int
    tunnel_ttl: int


@dataclass(frozen=True)
class Walk:
    src: str
    dst: str
    src_address: IPv4Address
    dst_address: IPv4Address
    hops: tuple[Hop, ...]


@dataclass(frozen=True)
class Scenario:
    """A fault and what the plan predicts under it: every node's routes, every ping."""

    name: str                        # "tunnel gw1-gw2-ipip down"
    tunnels: tuple[str, ...]         # the tunnels that are down
    routes: tuple[tuple[str, tuple[Route, ...]], ...]   # node -> its table (only nodes whose table changes)
    pings: tuple[Ping, ...]
    unreachable: tuple[tuple[str, str], ...] = ()       # (from, to) server pairs with no path left


@dataclass(frozen=True)
class SiteInfo:
    name: str
    lan: IPv4Network
    gateway: str
    lan_if: str = "eth1"


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
    sites: tuple[SiteInfo, ...]
    routing: str = "static"
    adjacencies: tuple[Adjacency, ...] = ()
    scenarios: tuple[Scenario, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @cached_property
    def _by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def gateways(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "gateway")

    @property
    def servers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "server")
