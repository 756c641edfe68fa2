"""expected.json: the typed, versioned contract between `render` and everything that runs a lab.

Runtimes and verify read a rendered lab through these classes only, never the intent and never
JSON walked by hand. The `schema` number changes whenever the shape does; a lab rendered by
another clabgen is refused on load with the fix (render it again), not misread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import __version__, codec
from .errors import ClabgenError, Problem, Where
from .iproute import route_text

SCHEMA = 2
FILE = "expected.json"


@dataclass(frozen=True)
class IfaceSpec:
    name: str
    role: str                     # lan | underlay | tunnel | switchport
    address: str | None           # "10.1.5.1/24"
    mtu: int
    peer: str | None = None       # "node:ifname" at the other end of the veth


@dataclass(frozen=True)
class NextHopSpec:
    via: str
    dev: str


RouteKey = tuple[str, str, str | None, str, str, str | None, int | None, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class RouteSpec:
    """One route as `ip route show` lists it (an equal-cost route with its `nexthops`), and what
    the routing daemon's RIB says of it: OSPF path cost, BGP AS path."""

    dst: str
    dev: str
    via: str | None = None
    proto: str = "kernel"
    scope: str = "link"
    src: str | None = None
    metric: int | None = None
    nexthops: tuple[NextHopSpec, ...] = ()
    cost: int | None = None
    as_path: tuple[int, ...] | None = None

    def text(self) -> str:
        return route_text(self.dst, self.dev, self.via, self.proto, self.scope, self.src, self.metric,
                          tuple((h.via, h.dev) for h in self.nexthops))

    def key(self) -> RouteKey:
        """What identifies it in the kernel (next hops as a set: the kernel keeps its own order)."""
        return (self.dst, self.dev, self.via, self.proto, self.scope, self.src, self.metric,
                frozenset((h.via, h.dev) for h in self.nexthops))


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str                     # gateway | server | switch
    site: str | None
    platform: str                 # a gateway platform, or "linux"
    image: str
    interfaces: tuple[IfaceSpec, ...]
    routes: tuple[RouteSpec, ...]
    config: str | None = None     # a gateway's startup config, relative to the lab directory
    router_id: str | None = None  # dynamic routing: the gateway's router ID (its loopback)
    asn: int | None = None        # bgp: its AS


@dataclass(frozen=True)
class PlatformSpec:
    """What a runtime needs to know of a gateway platform to run its nodes."""

    name: str
    family: str | None
    release: str | None
    startup_config: str | None    # where the startup config is mounted in the node
    emulator: str | None          # clabgen.emu entry that applies it without the vendor image
    emulator_image: str | None    # local stand-in image carrying that emulator (clabgen.images)
    static_proto: str | None      # how its static routes look in the kernel
    static_metric: int | None


@dataclass(frozen=True)
class LinkSpec:
    a: str                        # "node:ifname"
    b: str
    mtu: int
    segment: str


@dataclass(frozen=True)
class TunnelEndSpec:
    node: str
    ifname: str
    address: str                  # the tunnel interface's own address, "1.1.1.1/24"
    local: str                    # underlay addresses
    remote: str
    underlay_if: str


@dataclass(frozen=True)
class TunnelSpec:
    name: str
    type: str                     # an entry of clabgen.tunnels.TUNNEL_TYPES
    ip_proto: int
    overhead: int
    mtu: int
    ends: tuple[TunnelEndSpec, TunnelEndSpec]
    # policy-based IPsec: no interface (ends' ifname is only a key), ESP carries the LAN prefixes
    policy: bool = field(default=False, metadata={"omit_empty": True})


@dataclass(frozen=True)
class PingSpec:
    src: str = field(metadata={"json": "from"})
    dst: str = field(metadata={"json": "to"})
    address: str
    ttl: int                      # TTL of the reply as the sender sees it
    kind: str                     # server | tunnel
    alt_ttls: tuple[int, ...] = ()   # equal-cost paths of other lengths: also fine

    def ttls(self) -> tuple[int, ...]:
        return (self.ttl, *self.alt_ttls)


@dataclass(frozen=True)
class CaptureSpec:
    """One echo request followed across a tunnel: seen on the sender's LAN, on the tunnel device
    of the gateway that encapsulates it, and on that gateway's underlay interface."""

    tunnel: str
    node: str                     # the encapsulating gateway
    iface: str                    # its underlay interface
    tunnel_if: str
    lan_node: str                 # the sender and its LAN interface
    lan_if: str
    src_address: str
    dst_address: str
    outer_src: str
    outer_dst: str
    ip_proto: int
    lan_frame_len: int
    underlay_frame_len: int
    lan_ttl: int                  # the inner TTL on the sender's LAN
    tunnel_ttl: int               # ... and when it enters the tunnel (every router on the way took one)


@dataclass(frozen=True)
class AdjacencySpec:
    """A routing session that must come up: OSPF neighbour Full, BGP session Established."""

    node: str
    peer: str
    protocol: str                 # ospf | bgp
    ifname: str
    peer_address: str
    peer_id: str                  # OSPF: the neighbour's router ID; BGP: its AS


@dataclass(frozen=True)
class NodeRoutesSpec:
    node: str
    routes: tuple[RouteSpec, ...]


@dataclass(frozen=True)
class ScenarioSpec:
    """A fault (`clabgen fault`) and the plan's prediction under it: the tables that change and
    every ping (one whose path is gone is listed in `unreachable`)."""

    name: str                     # "tunnel gw1-gw2-ipip down", "underlay gw1:eth2 down"
    tunnels: tuple[str, ...]      # tunnels that carry nothing
    routes: tuple[NodeRoutesSpec, ...]
    pings: tuple[PingSpec, ...]
    unreachable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CryptoEndSpec:
    """One end of an encrypted tunnel as its daemon should show it (no secret is ever here)."""

    node: str
    ifname: str                   # the interface its packets enter: wg0, or the GRE tunnel of GRE over IPsec
    local: str                    # underlay addresses
    remote: str
    port: int                     # WireGuard: its listen port; IPsec: 4500
    peer_port: int
    public_key: str | None = None         # WireGuard: this end's public key
    peer_public_key: str | None = None
    # policy-based IPsec: the prefixes its CHILD_SA's traffic selectors must hold
    local_ts: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})
    remote_ts: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})


@dataclass(frozen=True)
class CryptoSpec:
    """An encrypted tunnel: what verify asks its daemon (handshake, security associations) and
    how its packets look on the underlay (clabgen.tunnels: wire_signature)."""

    tunnel: str
    type: str
    daemon: str                   # wireguard | ipsec (clabgen.verify_crypto)
    ends: tuple[CryptoEndSpec, CryptoEndSpec]


@dataclass(frozen=True)
class LabContract:
    schema: int
    generator: str                # "clabgen 0.2.0"
    lab: str
    source: str                   # the intent file it was rendered from
    ignore_route_devs: tuple[str, ...]   # containerlab's management interface
    platforms: tuple[PlatformSpec, ...]
    nodes: tuple[NodeSpec, ...]
    links: tuple[LinkSpec, ...]
    tunnels: tuple[TunnelSpec, ...]
    pings: tuple[PingSpec, ...]
    captures: tuple[CaptureSpec, ...]
    routing: str = "static"
    adjacencies: tuple[AdjacencySpec, ...] = ()
    scenarios: tuple[ScenarioSpec, ...] = ()
    warnings: tuple[str, ...] = ()
    crypto: tuple[CryptoSpec, ...] = field(default=(), metadata={"omit_empty": True})

    def crypto_of(self, tunnel: str) -> CryptoSpec | None:
        return self._crypto.get(tunnel)

    @cached_property
    def _crypto(self) -> dict[str, CryptoSpec]:
        return {c.tunnel: c for c in self.crypto}

    @cached_property
    def _nodes(self) -> dict[str, NodeSpec]:
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> NodeSpec:
        return self._nodes[name]

    def scenario(self, name: str) -> ScenarioSpec | None:
        return next((s for s in self.scenarios if s.name == name), None)

    def platform(self, name: str) -> PlatformSpec | None:
        return next((p for p in self.platforms if p.name == name), None)

    def to_json(self) -> str:
        return codec.to_json(self) + "\n"

    @classmethod
    def from_json(cls, text: str, file: str = FILE) -> LabContract:
        """Parse and check expected.json; a lab rendered by another clabgen is a clear error."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ClabgenError(Problem(Where(file), f"not valid JSON: {exc}", "render the lab again")) from None
        if not isinstance(data, dict):
            raise ClabgenError(Problem(Where(file), "not a lab contract (expected a JSON object)"))
        schema = data.get("schema")
        if schema != SCHEMA:
            made_by = data.get("generator") or "an earlier clabgen"
            raise ClabgenError(Problem(
                Where(file, field="schema"),
                f"rendered by {made_by} (lab contract schema {schema}); this is clabgen {__version__}, "
                f"which reads schema {SCHEMA}",
                f"render the lab again: clabgen render {data.get('source') or 'INTENT'}"))
        try:
            return codec.from_data(cls, data)  # type: ignore[no-any-return]
        except codec.CodecError as exc:
            raise ClabgenError(Problem(Where(file, field=exc.path), exc.message,
                                       "edit the intent and render again; expected.json is generated")) from None

    @classmethod
    def load(cls, path: Path) -> LabContract:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ClabgenError(Problem(Where(str(path)), "missing; render the intent first")) from None
        except UnicodeDecodeError:
            raise ClabgenError(Problem(Where(str(path)), "not UTF-8 text", "render the lab again")) from None
        return cls.from_json(text, str(path))


def generator() -> str:
    return f"clabgen {__version__}"
