"""The plan as plain data for templates: formatting only (strings, labels, ids), no decisions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from ipaddress import IPv4Network
from typing import Any, overload

from . import platforms, view_crypto
from .planned import Hop, Node, Plan, Policy, Texts, Tunnel, TunnelEnd
from .tunnels import tunnel_type


def hop_text(h: Hop) -> str:
    if h.route is None and h.out_if is None:
        return f"**{h.node}** receives it on {h.in_if}: the destination is its own address."
    if h.route is None:
        return f"**{h.node}** {h.note}."
    where = f" (in on {h.in_if})" if h.in_if else ""
    text = f"**{h.node}**{where} matches `{h.route}` and sends it out of {h.out_if}"
    return text + (f"; {h.note}." if h.note else ".")


ROUTES_IN_README = 5000   # past this many routes in the lab, its README counts them per node instead of listing


def lab_view(plan: Plan) -> dict[str, Any]:
    listed = sum(len(n.routes) for n in plan.nodes) <= ROUTES_IN_README
    # Mermaid ids: node names may be Mermaid words (`end`) or hold `--`, so the diagram numbers them.
    ids = {n.name: f"n{i}" for i, n in enumerate(plan.nodes)}
    tunnel_of = {(e.node, e.ifname): t for t in plan.tunnels for e in t.ends}
    policies = {(g.name, p.tunnel): p for g in plan.gateways for p in g.policies}
    texts = Texts()
    return {
        "name": plan.name,
        "nodes": [_node(n, ids, listed) for n in plan.nodes],
        "routes_listed": listed,
        "links": [_link(link, ids) for link in plan.links],
        "tunnels": [_tunnel(t, ids, policies) for t in plan.tunnels],
        "gateways": [_gateway(plan, g, tunnel_of, texts) for g in plan.gateways],
        "pings": [{"src": p.src, "dst": p.dst, "address": str(p.address),
                   "ttl": " or ".join(str(t) for t in (p.ttl, *p.alt_ttls))} for p in plan.pings],
        "walks": [{"src": w.src, "dst": w.dst, "src_address": str(w.src_address), "dst_address": str(w.dst_address),
                   "hops": [hop_text(h) for h in w.hops]} for w in plan.walks],
        "captures": [{"tunnel": c.tunnel, "node": c.node, "iface": c.iface, "tunnel_if": c.tunnel_if,
                      "lan_node": c.lan_node, "lan_if": c.lan_if, "inner_src": str(c.src_address),
                      "dst": str(c.dst_address), "outer_src": str(c.outer_src), "outer_dst": str(c.outer_dst),
                      "ip_proto": c.ip_proto, "lan_frame_len": c.lan_frame_len,
                      "underlay_frame_len": c.underlay_frame_len} for c in plan.captures],
        "routing": _routing(plan),
        "secrets": view_crypto.readme_secrets(plan),
    }


Row = dict[str, Any]


class StaticRows(Sequence[Row]):
    """A gateway's static routes as rows, made when a template first reads them: on a big lab the
    gateways' files are rendered in a child process, and the parent's README prints none of them."""

    def __init__(self, g: Node, text: Texts) -> None:
        self._g, self._text = g, text
        self._rows: list[Row] | None = None

    def _made(self) -> list[Row]:
        if self._rows is None:
            text = self._text
            # plain dicts for format_each: a 200-site lab prints 40 000 static routes, twice
            self._rows = [{"prefix": text(r.prefix), "next_hop": text(r.next_hop), "dev": r.dev}
                          for r in self._g.static_routes]
        return self._rows

    def __len__(self) -> int:
        return len(self._g.static_routes)

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> list[Row]: ...

    def __getitem__(self, i: int | slice) -> Row | list[Row]:
        return self._made()[i]

    def __iter__(self) -> Iterator[Row]:
        return iter(self._made())


def _routing(plan: Plan) -> dict[str, Any]:
    """The routing section of the lab README: routers, sessions, and each fault's outcome."""
    base = {n.name: {r.text() for r in n.routes} for n in plan.nodes} if plan.scenarios else {}
    scenarios = []
    for s in plan.scenarios:
        changes = []
        for node, routes in s.routes:
            now = {r.text() for r in routes}
            changes.append({"node": node, "gone": sorted(base[node] - now), "new": sorted(now - base[node])})
        scenarios.append({"name": s.name, "changes": changes,
                          "unreachable": [f"{a} -> {b}" for a, b in s.unreachable],
                          "pings": [{"src": p.src, "dst": p.dst, "ttl": " or ".join(str(t) for t in (p.ttl, *p.alt_ttls))}
                                    for p in s.pings if p.kind == "server"]})
    return {
        "type": plan.routing,
        "routers": [{"name": g.name, "router_id": str(g.loopback.ip) if g.loopback else None,
                     "asn": g.bgp.asn if g.bgp else None} for g in plan.gateways],
        "adjacencies": [{"node": a.node, "peer": a.peer, "protocol": a.protocol, "ifname": a.ifname,
                         "peer_address": str(a.peer_address), "peer_id": a.peer_id} for a in plan.adjacencies],
        "scenarios": scenarios,
    }


def _node(n: Node, ids: dict[str, str], listed: bool = True) -> dict[str, Any]:
    label = "<br/>".join([f"{n.name} ({n.platform if n.role == 'gateway' else n.role})"] +
                         [f"{i.name} {i.address}" for i in n.interfaces if i.address and i.role != "tunnel"])
    return {
        "name": n.name, "id": ids[n.name], "role": n.role, "site": n.site, "platform": n.platform, "label": label,
        "clab": {"kind": n.clab.kind, "image": n.clab.image, "cmd": n.clab.cmd,
                 "binds": list(n.clab.binds), "exec": list(n.clab.exec)},
        "interfaces": [{"name": i.name, "address": str(i.address) if i.address else None, "mtu": i.mtu,
                        "peer": i.peer, "role": i.role} for i in n.interfaces],
        "routes": [r.text() for r in n.routes] if listed else [],
        "route_count": len(n.routes),
    }


def _link(link: Any, ids: dict[str, str]) -> dict[str, Any]:
    an, ai = link.a.split(":")
    bn, bi = link.b.split(":")
    seg = "underlay" if link.segment == "underlay" else "LAN"
    return {"a": link.a, "b": link.b, "a_node": an, "a_if": ai, "b_node": bn, "b_if": bi,
            "a_id": ids[an], "b_id": ids[bn], "mtu": link.mtu, "mtu_is_default": link.mtu_is_default,
            "label": f"{ai} - {bi} ({seg}, MTU {link.mtu})"}


def _tunnel(t: Tunnel, ids: dict[str, str], policies: dict[tuple[str, str], Policy]) -> dict[str, Any]:
    a, b = t.ends
    if t.policy:
        label = f"IPsec policy {a.local} - {b.local}"
        ends = [f"{e.node}: IPsec policy {_nets(policies[(e.node, t.name)].local)} > "
                f"{_nets(policies[(e.node, t.name)].remote)}" for e in t.ends]
    else:
        label = f"{a.ifname} {t.type} {a.address.ip} - {b.address.ip} {b.ifname}"
        ends = [f"{e.node}:{e.ifname} {e.address}" for e in t.ends]
    return {"name": t.name, "type": t.type, "ip_proto": t.ip_proto, "overhead": t.overhead,
            "mtu": t.mtu, "a": a.node, "b": b.node, "a_id": ids[a.node], "b_id": ids[b.node], "label": label,
            "policy": t.policy,
            "ends": [{"node": e.node, "ifname": e.ifname, "address": str(e.address), "text": text,
                      "local": str(e.local), "remote": str(e.remote)} for e, text in zip(t.ends, ends)]}


def _nets(nets: tuple[IPv4Network, ...]) -> str:
    return ", ".join(str(n) for n in nets) or "nothing"


def _gateway(plan: Plan, g: Node, tunnel_of: dict[tuple[str, str], Tunnel], texts: Texts) -> dict[str, Any]:
    lan = next(i for i in g.interfaces if i.role == "lan")
    underlay = next((i for i in g.interfaces if i.role == "underlay"), None)
    return {
        "name": g.name, "site": g.site, "platform": g.platform,
        "lan_address": str(lan.address),
        "underlay_address": str(underlay.address.ip) if underlay and underlay.address else "-",
        "tunnel_types": "/".join(sorted({tunnel_of[(g.name, e.ifname)].type for e in g.tunnels})) or "tunnel",
        "ethernets": [{"name": i.name, "address": str(i.address), "mtu": i.mtu, "mtu_in_config": i.mtu_in_config}
                      for i in g.ethernets],
        "tunnels": [_tunnel_end(g, e, tunnel_of[(g.name, e.ifname)]) for e in g.tunnels],
        "static_routes": StaticRows(g, texts),
        "servers": [{"name": s.name, "netns": s.netns, "host_if": s.host_if, "address": str(s.address),
                     "gateway": str(s.gateway)} for s in g.host_servers],
        "loopback": str(g.loopback) if g.loopback else None,
        "ospf": _ospf(g),
        "bgp": _bgp(g),
        "bfd_peers": [{"address": str(p.address), "multiplier": BFD_MULTIPLIER, "receive": BFD_INTERVAL_MS,
                       "transmit": BFD_INTERVAL_MS} for p in (g.bgp.peers if g.bgp else ()) if p.bfd],
        "wireguard_key": _wireguard_key(g, tunnel_of),
        "wireguard_key_output": g.wireguard_key_output,
    }


def _wireguard_key(g: Node, tunnel_of: dict[tuple[str, str], Tunnel]) -> dict[str, Any] | None:
    """The gateway's WireGuard private key (one per gateway), when it has WireGuard tunnels."""
    for e in g.tunnels:
        t = tunnel_of[(g.name, e.ifname)]
        if t.crypto is not None and t.crypto.end(g.name).private_key is not None:
            return view_crypto.secret(t.crypto.end(g.name).private_key)
    return None


# BFD timers rendered with a peer (1.2 needs a `protocols bfd peer` for every BGP neighbour with bfd).
BFD_INTERVAL_MS, BFD_MULTIPLIER = 300, 3


def _ospf(g: Node) -> dict[str, Any] | None:
    o = g.ospf
    if o is None:
        return None
    return {"router_id": str(o.router_id),
            "areas": [{"id": area, "networks": [str(n) for n in nets]} for area, nets in o.areas],
            "interfaces": [{"ifname": i.ifname, "kind": i.kind, "cost": i.cost, "hello": i.hello, "dead": i.dead,
                            "network": i.network, "passive": i.passive, "bfd": i.bfd, "retransmit": i.retransmit}
                           for i in o.interfaces],
            "spf": {"delay": o.spf[0], "initial": o.spf[1], "max": o.spf[2]}}


def _bgp(g: Node) -> dict[str, Any] | None:
    b = g.bgp
    if b is None:
        return None
    return {"asn": b.asn, "router_id": str(b.router_id), "networks": [str(n) for n in b.networks],
            "keepalive": b.keepalive, "holdtime": b.holdtime, "compare_routerid": True,
            "neighbors": [{"address": str(p.address), "remote_as": p.remote_as, "description": p.name,
                           "update_source": p.update_source, "next_hop_self": p.next_hop_self, "bfd": p.bfd,
                           "multihop": None} for p in b.peers]}


def _tunnel_end(g: Node, e: TunnelEnd, t: Tunnel) -> dict[str, Any]:
    ttype = tunnel_type(t.type, t.policy)
    out = {"ifname": e.ifname, "type": t.type, "mode": ttype.linux_mode, "encapsulation": ttype.vyos_encapsulation,
           "address": str(e.address), "local": str(e.local), "remote": str(e.remote), "mtu": t.mtu,
           "mtu_in_config": not t.policy and g.iface(e.ifname).mtu_in_config, "peer_node": e.peer_node,
           "ttl": g.tunnel_ttl, "kind": ttype.ifname_kind, "wireguard": None, "ipsec": None}
    if t.crypto is not None:
        policy = g.policy_of(t.name) if t.policy else None
        out.update(view_crypto.crypto_end(e, t.peer(e), t, t.crypto, e.underlay_if, policy))
    return out


def platform_view(name: str) -> dict[str, Any]:
    """A gateway platform's facts templates print (the release footer)."""
    return {"name": name, "footer": platforms.load(name).facts.footer}
