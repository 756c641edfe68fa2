"""Plan -> LabContract: the checkable facts of a lab, as render writes them into expected.json."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from . import codec, platforms
from .contract import (
    SCHEMA,
    AdjacencySpec,
    CaptureSpec,
    CryptoEndSpec,
    CryptoSpec,
    IfaceSpec,
    LabContract,
    LinkSpec,
    NextHopSpec,
    NodeRoutesSpec,
    NodeSpec,
    PingSpec,
    PlatformSpec,
    RouteSpec,
    ScenarioSpec,
    TunnelEndSpec,
    TunnelSpec,
    generator,
)
from .planned import NextHop, Node, Ping, Plan, Route, Tunnel, TunnelEnd
from .tunnels import tunnel_type

# containerlab's management interface; its routes are not part of the lab's design.
MGMT_DEVS = ("eth0",)


def contract(plan: Plan, source: str, *, nodes: bool = True) -> LabContract:
    """The lab's contract (without `nodes`, its nodes left empty: see expected_json)."""
    return LabContract(
        schema=SCHEMA, generator=generator(), lab=plan.name, source=source, ignore_route_devs=MGMT_DEVS,
        platforms=tuple(_platform(name) for name in sorted({g.platform for g in plan.gateways})),
        nodes=tuple(_node(n) for n in plan.nodes) if nodes else (),
        links=tuple(LinkSpec(link.a, link.b, link.mtu, link.segment) for link in plan.links),
        tunnels=tuple(TunnelSpec(t.name, t.type, t.ip_proto, t.overhead, t.mtu, (_end(t.ends[0]), _end(t.ends[1])),
                                 t.policy) for t in plan.tunnels),
        pings=tuple(_ping(p) for p in plan.pings),
        captures=tuple(CaptureSpec(c.tunnel, c.node, c.iface, c.tunnel_if, c.lan_node, c.lan_if,
                                   str(c.src_address), str(c.dst_address), str(c.outer_src), str(c.outer_dst),
                                   c.ip_proto, c.lan_frame_len, c.underlay_frame_len, c.lan_ttl, c.tunnel_ttl)
                       for c in plan.captures),
        routing=plan.routing,
        adjacencies=tuple(AdjacencySpec(a.node, a.peer, a.protocol, a.ifname, str(a.peer_address), a.peer_id)
                          for a in plan.adjacencies),
        scenarios=tuple(ScenarioSpec(s.name, s.tunnels,
                                     tuple(NodeRoutesSpec(n, tuple(_route(r) for r in rs)) for n, rs in s.routes),
                                     tuple(_ping(p) for p in s.pings), s.unreachable) for s in plan.scenarios),
        warnings=plan.warnings,
        crypto=tuple(_crypto(plan, t) for t in plan.tunnels if t.crypto is not None))


def _crypto(plan: Plan, t: Tunnel) -> CryptoSpec:
    assert t.crypto is not None
    c = t.crypto

    def end(e: TunnelEnd) -> CryptoEndSpec:
        mine, peer = c.end(e.node), c.peer(e.node)
        policy = plan.node(e.node).policy_of(t.name) if t.policy else None
        return CryptoEndSpec(e.node, e.ifname, str(e.local), str(e.remote), mine.port, peer.port,
                             mine.public_key, peer.public_key,
                             tuple(str(n) for n in policy.local) if policy else (),
                             tuple(str(n) for n in policy.remote) if policy else ())

    return CryptoSpec(t.name, t.type, tunnel_type(t.type).daemon, (end(t.ends[0]), end(t.ends[1])))


def _node(n: Node, routes: tuple[RouteSpec, ...] | None = None) -> NodeSpec:
    return NodeSpec(n.name, n.role, n.site, n.platform, n.clab.image,
                    tuple(IfaceSpec(i.name, i.role, str(i.address) if i.address else None, i.mtu, i.peer)
                          for i in n.interfaces),
                    tuple(_route(r) for r in n.routes) if routes is None else routes, n.config,
                    str(n.loopback.ip) if n.loopback else None, n.bgp.asn if n.bgp else None)


def _route(r: Route) -> RouteSpec:
    hops = tuple([NextHopSpec(h.via, h.dev) for h in r.nexthops]) if r.nexthops else ()   # most have none
    return codec.made(RouteSpec, {"dst": r.dst, "dev": r.dev, "via": r.via, "proto": r.proto, "scope": r.scope, "src": r.src,
                                  "metric": r.metric, "nexthops": hops, "cost": r.cost, "as_path": r.as_path})


def _ping(p: Ping) -> PingSpec:
    return PingSpec(p.src, p.dst, str(p.address), p.ttl, p.kind, p.alt_ttls)


def _end(e: TunnelEnd) -> TunnelEndSpec:
    return TunnelEndSpec(e.node, e.ifname, str(e.address), str(e.local), str(e.remote), e.underlay_if)


def _platform(name: str) -> PlatformSpec:
    f = platforms.load(name).facts
    return PlatformSpec(name, f.family, f.release, f.startup_config, f.emulator, f.emulator_image,
                        f.static_routes.proto if f.static_routes else None,
                        f.static_routes.metric if f.static_routes else None)


_TOP = "\n  "                    # a top-level field's line, as codec.to_json indents it
_NODES = _TOP + '"nodes": '


# The plan's routes have the fields of the contract's, under the same names: written as they are
# (a node's routes are given to its NodeSpec uncopied, for writing only: nothing reads them back).
codec.write_as(Route, RouteSpec)
codec.write_as(NextHop, NextHopSpec)


def nodes_json(draft: Plan) -> str:
    """The value of expected.json's `nodes`, as written there: a big lab's routes, most of the file.
    From a draft of the plan (its nodes are final), so a child process writes it while the parent
    plans the checks."""
    return codec.to_json_at(_nodes(draft), _TOP)


def nodes_json_pieces(draft: Plan) -> Iterator[bytes]:
    """nodes_json(draft), encoded, in pieces of a megabyte or so."""
    return (piece.encode() for piece in codec.to_json_pieces(_nodes(draft), _TOP))


def _nodes(draft: Plan) -> tuple[NodeSpec, ...]:
    return tuple(_node(n, cast("tuple[RouteSpec, ...]", n.routes)) for n in draft.nodes)


def expected_json(plan: Plan, source: str) -> str:
    head, tail = _around_nodes(plan, source)
    return head + nodes_json(plan) + tail


def around_nodes(plan: Plan, source: str) -> tuple[bytes, bytes]:
    """expected.json's bytes before and after the value of its `nodes` field (nodes_json() of this
    plan's draft goes between)."""
    head, tail = _around_nodes(plan, source)
    return head.encode(), tail.encode()


def _around_nodes(plan: Plan, source: str) -> tuple[str, str]:
    head, empty, tail = contract(plan, source, nodes=False).to_json().partition(_NODES + "[]")
    if not empty:
        raise ValueError("expected.json has no top-level nodes field")
    return head + _NODES, tail
