"""Read protocols ospf, bgp and bfd (and 1.2's per-interface `ip ospf`) of a VyOS config.boot.

The releases write the same routing differently (docs/routing-runtime.md): 1.2 and 1.3 say
`protocols bgp 65001 {}`, put per-interface OSPF under `interfaces ... ip ospf` and name passive
interfaces in `passive-interface eth1`; 1.4 and later say `protocols bgp { system-as 65001 }`,
`protocols ospf interface eth1 {}` and accept only `passive-interface default`. A node in the
other release's syntax is an error saying what this release writes (VyOS would not commit it);
a value VyOS refuses is FILE:LINE; what VyOS accepts but the FRR translation does not write is
listed as not applied. Ranges are VyOS's own (the release's interface definitions).
The result, routing_conf.Routing, is the same whatever the release.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ..vyos_config import CNode
from .routing_conf import BfdPeer, Bgp, BgpNeighbor, Ospf, OspfInterface, Redistribute, Routing
from .vyos import ROUTE_IFNAME, _address, _arg, _named, _Reader, integer_in, ipv4_address, ipv4_prefix

U16 = (1, 65535)
ASN = (1, 4294967294)
NETWORK_TYPES = ("broadcast", "non-broadcast", "point-to-multipoint", "point-to-point")
# VyOS's defaults where FRR's differ (every other VyOS default restates FRR's own): 1.4 always
# renders them; 1.2 fills in the leaves missing from a `timers throttle spf` block.
SPF_DEFAULTS = (200, 1000, 10000)
# `redistribute X` that FRR's ospfd and bgpd take as they are (not `table N`, which needs its id).
OSPF_REDISTRIBUTE = {"1.2": ("bgp", "connected", "kernel", "rip", "static"),
                     "1.4": ("babel", "bgp", "connected", "isis", "kernel", "rip", "static")}
BGP_REDISTRIBUTE = ("connected", "kernel", "ospf", "rip", "static")
_AREA_DOTTED = re.compile(r"\d+\.\d+\.\d+\.\d+")


# --- what each release writes ------------------------------------------------------------------


def legacy(r: _Reader) -> bool:
    """1.2/1.3 syntax is accepted (a release-less config accepts both)."""
    return r.release.routing in ("1.2", "any")


def modern(r: _Reader) -> bool:
    return r.release.routing in ("1.4", "any")


def _other_syntax(r: _Reader, node: CNode, path: str, instead: str) -> None:
    r.problem(node, path, f"not {r.release.label} syntax: {instead}")


# --- value checks ------------------------------------------------------------------------------


def _area(value: str) -> str:
    if value.isdigit() and int(value) <= 4294967295:
        return value
    if _AREA_DOTTED.fullmatch(value):
        return str(ipv4_address(value))
    raise ValueError("not an area id (a number 0..4294967295 or an IPv4 address)")


def _remote_as(value: str) -> str:
    if value in ("external", "internal"):
        return value
    return str(integer_in(ASN)(value))


def _ifname(value: str) -> str:
    if not ROUTE_IFNAME.fullmatch(value):
        raise ValueError("not an interface name VyOS knows")
    return value


def _peer(value: str) -> str:
    """An address or an interface name (update-source, a 1.4 neighbor)."""
    try:
        return str(_address(value))
    except ValueError:
        pass
    if ROUTE_IFNAME.fullmatch(value):
        return value
    raise ValueError("neither an IP address nor an interface name")


def _holdtime(legacy_range: bool) -> Callable[[str], int]:
    """1.2: 0 or 4..65535; 1.4: 0..65535."""
    def check(value: str) -> int:
        n = integer_in((0, 65535))(value)
        if legacy_range and 0 < n < 4:
            raise ValueError("out of range")
        return n
    return check


def _range_hint(r: _Reader, bounds: tuple[int, int], extra: str = "") -> str:
    return f"{r.release.label} accepts {bounds[0]}..{bounds[1]}{extra}"


def _number(r: _Reader, node: CNode, path: str, bounds: tuple[int, int]) -> int | None:
    return r.value(node, path, integer_in(bounds), _range_hint(r, bounds))


def _flag(r: _Reader, node: CNode, path: str) -> bool:
    """A valueless node (`mtu-ignore` or `bfd {\n}`): present is True; its own children are not applied."""
    r.valueless(node, path)
    for c in node.children:
        r.not_applied(f"{path} {node.name} {_named(c)}")
    return True


# --- OSPF --------------------------------------------------------------------------------------


def read_ip(r: _Reader, node: CNode, ifname: str, path: str) -> list[OspfInterface]:
    """`interfaces <type> <ifname> ip {}`: its `ospf` block is 1.2's per-interface OSPF."""
    out = []
    for c in node.children:
        if c.name != "ospf":
            r.not_applied(f"{path} ip {_named(c)}")
        elif not legacy(r):
            _other_syntax(r, c, f"{path} ip ospf", f"per-interface OSPF is `protocols ospf interface {ifname}` "
                                                   f"since VyOS 1.4")
        else:
            out.append(_ospf_interface(r, c, ifname, f"{path} ip ospf"))
    return out


def _ospf_interface(r: _Reader, node: CNode, ifname: str, path: str) -> OspfInterface:
    numbers = {"cost": U16, "hello-interval": U16, "dead-interval": U16, "priority": (0, 255),
               "retransmit-interval": (3, 65535) if r.release.routing == "1.2" else U16, "transmit-delay": U16}
    vals: dict[str, Any] = {}
    for c in node.children:
        here = f"{path} {c.name}"
        if c.name in numbers:
            vals[c.name.replace("-", "_")] = _number(r, c, here, numbers[c.name])
        elif c.name == "network":
            vals["network"] = r.value(c, here, lambda v: _one_of(v, NETWORK_TYPES),
                                      f"VyOS accepts {', '.join(NETWORK_TYPES)}")
        elif c.name == "passive" and path.startswith("protocols"):
            vals["passive"] = not any(p.name == "disable" for p in c.children)
            r.valueless(c, path)
            for p in c.children:
                if p.name != "disable":
                    r.not_applied(f"{here} {_named(p)}")
        elif c.name == "passive":
            _other_syntax(r, c, here, f"a passive interface is `protocols ospf passive-interface {ifname}` until 1.3")
        elif c.name in ("bfd", "mtu-ignore"):
            vals[c.name.replace("-", "_")] = _flag(r, c, path)
        else:
            r.not_applied(f"{path} {_named(c)}")
    return OspfInterface(ifname, path, node.line, **{k: v for k, v in vals.items() if v is not None})


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError("not one of the values VyOS accepts")
    return value


def _ospf(r: _Reader, node: CNode, configured: set[str]) -> Ospf:
    path = "protocols ospf"
    networks: list[tuple[str, IPv4Network]] = []
    interfaces: list[OspfInterface] = []
    passive: list[str] = []
    redistribute: list[Redistribute] = []
    fields: dict[str, Any] = {}
    for c in node.children:
        if c.name == "area":
            area = r.value(c, f"{path} area", _area)
            if area is not None:
                networks.extend((area, p) for p in _area_networks(r, c, f"{path} area {area}"))
        elif c.name == "interface":
            if not modern(r):
                _other_syntax(r, c, f"{path} interface",
                              f"per-interface OSPF goes under `interfaces <type> {_arg(c)} ip ospf` until 1.3")
                continue
            ifname = r.value(c, f"{path} interface", _ifname)
            if ifname is not None:
                interfaces.append(_ospf_interface(r, c, ifname, f"{path} interface {ifname}"))
        elif c.name == "passive-interface":
            name = r.value(c, f"{path} passive-interface", lambda v: _passive(r, v, configured),
                           "VyOS 1.2 accepts an interface name or default" if legacy(r) and not modern(r) else "")
            if name == "default":
                fields["passive_default"] = True
            elif name is not None:
                passive.append(name)
        elif c.name == "parameters":
            for p in c.children:
                if p.name == "router-id":
                    fields["router_id"] = r.value(p, f"{path} parameters router-id", ipv4_address)
                else:
                    r.not_applied(f"{path} parameters {_named(p)}")
        elif c.name == "redistribute":
            allowed = OSPF_REDISTRIBUTE["1.2" if r.release.routing == "1.2" else "1.4"]
            redistribute.extend(_redistribute(r, c, f"{path} redistribute", allowed, ospf=True))
        elif c.name == "timers":
            fields["spf"] = _timers(r, c, f"{path} timers")
        elif c.name == "log-adjacency-changes":
            fields["log_adjacency_changes"] = "detail" if any(d.name == "detail" for d in c.children) else ""
            for d in c.children:
                if d.name != "detail":
                    r.not_applied(f"{path} log-adjacency-changes {_named(d)}")
        else:
            r.not_applied(f"{path} {_named(c)}")
    if fields.get("spf") is None and r.release.routing == "1.4":
        fields["spf"] = SPF_DEFAULTS
    return Ospf(node.line, tuple(networks), passive=tuple(passive), interfaces=tuple(interfaces),
                redistribute=tuple(redistribute), **{k: v for k, v in fields.items() if v is not None})


def _area_networks(r: _Reader, area: CNode, path: str) -> list[IPv4Network]:
    out = []
    for c in area.children:
        if c.name != "network":
            r.not_applied(f"{path} {_named(c)}")
            continue
        prefix = r.value(c, f"{path} network", ipv4_prefix)
        if prefix is not None:
            out.append(prefix)
    return out


def _passive(r: _Reader, value: str, configured: set[str]) -> str:
    if value == "default":
        return value
    if not legacy(r):
        raise ValueError("VyOS 1.4 accepts only `default` here; a passive interface is "
                         f"`protocols ospf interface {value} passive`")
    if not ROUTE_IFNAME.fullmatch(value) and value not in configured:
        raise ValueError("not an interface VyOS knows (none configured by that name)")
    return value


def _timers(r: _Reader, node: CNode, path: str) -> tuple[int, int, int] | None:
    """`timers throttle spf {delay initial-holdtime max-holdtime}`; VyOS fills in missing ones."""
    spf = None
    for t in node.children:
        if t.name != "throttle":
            r.not_applied(f"{path} {_named(t)}")
            continue
        for s in t.children:
            if s.name != "spf":
                r.not_applied(f"{path} throttle {_named(s)}")
                continue
            got = dict(zip(("delay", "initial-holdtime", "max-holdtime"), SPF_DEFAULTS))
            for leaf in s.children:
                if leaf.name in got:
                    v = _number(r, leaf, f"{path} throttle spf {leaf.name}", (0, 600000))
                    got[leaf.name] = v if v is not None else got[leaf.name]
                else:
                    r.not_applied(f"{path} throttle spf {_named(leaf)}")
            spf = (got["delay"], got["initial-holdtime"], got["max-holdtime"])
    return spf


def _redistribute(r: _Reader, node: CNode, path: str, allowed: tuple[str, ...], *, ospf: bool) -> list[Redistribute]:
    out = []
    for proto in node.children:
        if proto.name not in allowed:
            r.not_applied(f"{path} {_named(proto)}")
            continue
        vals: dict[str, int | None] = {}
        for leaf in proto.children:
            here = f"{path} {proto.name} {leaf.name}"
            if leaf.name == "metric":
                vals["metric"] = _number(r, leaf, here, (0, 16777214) if ospf else (0, 4294967295))
            elif leaf.name == "metric-type" and ospf:
                vals["metric_type"] = _number(r, leaf, here, (1, 2))
            else:
                r.not_applied(f"{path} {proto.name} {_named(leaf)}")
        out.append(Redistribute(proto.name, **vals))
    return out


# --- BGP ---------------------------------------------------------------------------------------


def _bgp(r: _Reader, node: CNode) -> tuple[Bgp | None, list[tuple[str, CNode]]]:
    """The BGP instance and its neighbors' `bfd` nodes (1.2 checks them against `protocols bfd`)."""
    asn: int | None = None
    tagged = node.tag is not None
    if tagged:
        if not legacy(r):
            _other_syntax(r, node, "protocols bgp", f"the AS is `system-as {node.tag}` inside `protocols bgp` "
                                                    "since VyOS 1.4")
            return None, []
        asn = r.value(node, "protocols bgp", integer_in(ASN), _range_hint(r, ASN))
    elif not modern(r):
        r.problem(node, "protocols bgp", f"no AS number: {r.release.label} writes `protocols bgp 65001 {{`")
        return None, []
    path = f"protocols bgp {node.tag}" if tagged else "protocols bgp"
    fields: dict[str, Any] = {"default_ipv4_unicast": tagged, "activate_all": tagged}
    neighbors: list[BgpNeighbor] = []
    networks: list[IPv4Network] = []
    redistribute: list[Redistribute] = []
    bfd_nodes: list[tuple[str, CNode]] = []
    system_as: CNode | None = None
    for c in node.children:
        if c.name == "system-as":
            if tagged:
                _other_syntax(r, c, f"{path} system-as", "the AS is the tag of `protocols bgp` until 1.3")
            else:
                system_as = c
                asn = r.value(c, f"{path} system-as", integer_in(ASN), _range_hint(r, ASN))
        elif c.name == "neighbor":
            got = _neighbor(r, c, path, tagged)
            if got is not None:
                neighbors.append(got[0])
                bfd_nodes.extend((got[0].address, b) for b in got[1])
        elif c.name == "address-family":
            for af in c.children:
                if af.name != "ipv4-unicast":
                    r.not_applied(f"{path} address-family {_named(af)}")
                    continue
                for leaf in af.children:
                    here = f"{path} address-family ipv4-unicast"
                    if leaf.name == "network":
                        prefix = r.value(leaf, f"{here} network", ipv4_prefix)
                        if prefix is not None:
                            networks.append(prefix)
                            for opt in leaf.children:
                                r.not_applied(f"{here} network {prefix} {_named(opt)}")
                    elif leaf.name == "redistribute":
                        redistribute.extend(_redistribute(r, leaf, f"{here} redistribute", BGP_REDISTRIBUTE,
                                                          ospf=False))
                    else:
                        r.not_applied(f"{here} {_named(leaf)}")
        elif c.name == "parameters":
            fields.update(_bgp_parameters(r, c, f"{path} parameters", tagged))
        elif c.name == "timers":
            fields["timers"] = _bgp_timers(r, c, f"{path} timers", tagged)
        else:
            r.not_applied(f"{path} {_named(c)}")
    if not tagged and system_as is None:
        r.problem(node, path, "no system-as: VyOS refuses to commit protocols bgp without its AS number")
    if asn is None:
        return None, []
    return Bgp(asn, node.line, tuple(neighbors), tuple(networks), tuple(redistribute),
               **{k: v for k, v in fields.items() if v is not None}), bfd_nodes


def _bgp_parameters(r: _Reader, node: CNode, path: str, tagged: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in node.children:
        if p.name == "router-id":
            out["router_id"] = r.value(p, f"{path} router-id", ipv4_address)
        elif p.name == "bestpath" and any(b.name == "compare-routerid" for b in p.children):
            out["compare_routerid"] = True
            for b in p.children:
                if b.name != "compare-routerid":
                    r.not_applied(f"{path} bestpath {_named(b)}")
        elif p.name == "default" and tagged and any(d.name == "no-ipv4-unicast" for d in p.children):
            out["default_ipv4_unicast"] = False
            for d in p.children:
                if d.name != "no-ipv4-unicast":
                    r.not_applied(f"{path} default {_named(d)}")
        elif p.name in ("network-import-check", "log-neighbor-changes") or \
                (p.name == "ebgp-requires-policy" and not tagged):
            out[p.name.replace("-", "_")] = _flag(r, p, path)
        else:
            r.not_applied(f"{path} {_named(p)}")
    return out


def _bgp_timers(r: _Reader, node: CNode, path: str, tagged: bool) -> tuple[int, int] | None:
    """(keepalive, holdtime); VyOS writes `timers` only when both are set."""
    got: dict[str, int | None] = {}
    for t in node.children:
        if t.name == "keepalive":
            got["keepalive"] = _number(r, t, f"{path} keepalive", U16)
        elif t.name == "holdtime":
            got["holdtime"] = r.value(t, f"{path} holdtime", _holdtime(tagged),
                                      f"{r.release.label} accepts 0 or 4..65535" if tagged else
                                      _range_hint(r, (0, 65535)))
        else:
            r.not_applied(f"{path} {_named(t)}")
    ka, hold = got.get("keepalive"), got.get("holdtime")
    if ka is not None and hold is not None:
        return ka, hold
    return None


def _neighbor(r: _Reader, node: CNode, bgp_path: str, tagged: bool) -> tuple[BgpNeighbor, list[CNode]] | None:
    addr = r.value(node, f"{bgp_path} neighbor", _peer, "VyOS accepts an IP address or an interface name")
    if addr is None:
        return None
    path = f"{bgp_path} neighbor {addr}"
    if not _is_ipv4(addr):
        r.not_applied(f"{path} (only IPv4 neighbors are emulated)")
        return None
    fields: dict[str, Any] = {}
    bfd: list[CNode] = []
    peer_group = False
    for c in node.children:
        here = f"{path} {c.name}"
        if c.name == "remote-as":
            fields["remote_as"] = r.value(c, here, _remote_as, "VyOS accepts 1..4294967294, external or internal")
        elif c.name == "update-source":
            fields["update_source"] = r.value(c, here, _peer, "VyOS accepts an IP address or an interface name")
        elif c.name == "description":
            fields["description"] = _arg(c) or ""
        elif c.name == "ebgp-multihop":
            fields["ebgp_multihop"] = _number(r, c, here, (1, 255))
        elif c.name == "timers":
            fields["timers"] = _bgp_timers(r, c, here, tagged)
        elif c.name == "bfd":
            bfd.append(c)
            fields["bfd"] = True
            r.valueless(c, path)
            for b in c.children:
                if b.name == "check-control-plane-failure":
                    fields["bfd_check_control_plane"] = True
                else:
                    r.not_applied(f"{here} {_named(b)}")
        elif c.name == "address-family":
            for af in c.children:
                if af.name != "ipv4-unicast":
                    r.not_applied(f"{here} {_named(af)}")
                    continue
                fields["ipv4_unicast"] = True
                for opt in af.children:
                    if opt.name == "nexthop-self":
                        fields["nexthop_self"] = "force" if any(f.name == "force" for f in opt.children) else ""
                    else:
                        r.not_applied(f"{here} ipv4-unicast {_named(opt)}")
        elif c.name == "peer-group":
            peer_group = True
            r.not_applied(f"{here} {_arg(c)} (peer groups are not emulated)")
        else:
            r.not_applied(f"{path} {_named(c)}")
    if peer_group:
        return None
    if "remote_as" not in fields:
        if not any(c.name == "remote-as" for c in node.children):
            r.problem(node, path, "no remote-as: VyOS refuses to commit a neighbor without one (or a peer-group)")
        return None
    if fields.get("remote_as") is None:
        return None
    if not tagged and not fields.get("ipv4_unicast"):
        r.cfg.notes.append(f"{path}: no address-family ipv4-unicast, so VyOS never activates it "
                           "(it warns: BGP neighbor requires address-family)")
    return BgpNeighbor(addr, node.line, **{k: v for k, v in fields.items() if v is not None}), bfd


def _is_ipv4(value: str) -> bool:
    try:
        IPv4Address(value)
        return True
    except ValueError:
        return False


# --- BFD ---------------------------------------------------------------------------------------


def _bfd(r: _Reader, node: CNode) -> list[BfdPeer]:
    out = []
    for c in node.children:
        if c.name != "peer":
            r.not_applied(f"protocols bfd {_named(c)}")
            continue
        addr = r.value(c, "protocols bfd peer", lambda v: str(_address(v)))
        if addr is None:
            continue
        path = f"protocols bfd peer {addr}"
        if not _is_ipv4(addr):
            r.not_applied(f"{path} (IPv6 is not emulated)")
            continue
        fields: dict[str, Any] = {}
        for leaf in c.children:
            if leaf.name == "interval":
                for i in leaf.children:
                    bounds = {"multiplier": (2, 255), "receive": (10, 60000), "transmit": (10, 60000)}.get(i.name)
                    if bounds is None:
                        r.not_applied(f"{path} interval {_named(i)}")
                    else:
                        fields[i.name] = _number(r, i, f"{path} interval {i.name}", bounds)
            elif leaf.name in ("multihop", "shutdown"):
                fields[leaf.name] = _flag(r, leaf, path)
            elif leaf.name == "source" and any(s.name == "address" for s in leaf.children):
                for s in leaf.children:
                    if s.name == "address":
                        fields["source"] = r.value(s, f"{path} source address", lambda v: str(_address(v)))
                    else:
                        r.not_applied(f"{path} source {_named(s)}")
            else:
                r.not_applied(f"{path} {_named(leaf)}")
        if fields.get("multihop") and not fields.get("source"):
            r.problem(c, path, "multihop without source address: VyOS refuses it (BFD multihop require source address)")
        out.append(BfdPeer(addr, c.line, **{k: v for k, v in fields.items() if v is not None}))
    return out


# --- the whole routing part ----------------------------------------------------------------------


def read(r: _Reader, nodes: list[CNode], ip_ospf: list[OspfInterface], configured: set[str]) -> Routing:
    """protocols ospf/bgp/bfd plus the per-interface OSPF read with the interfaces (1.2)."""
    ospf: Ospf | None = None
    bgp: Bgp | None = None
    bfd: list[BfdPeer] = []
    bfd_nodes: list[tuple[str, CNode]] = []
    for node in nodes:
        if node.name == "ospf":
            ospf = _ospf(r, node, configured)
        elif node.name == "bgp":
            if bgp is not None:
                r.problem(node, "protocols bgp", f"a second BGP instance (AS {bgp.asn} is on line {bgp.line}): "
                                                 "VyOS runs one")
                continue
            bgp, bfd_nodes = _bgp(r, node)
        else:
            bfd.extend(_bfd(r, node))
    if ip_ospf:
        if ospf is None:
            r.cfg.ignored.extend(f"{i.path} (no protocols ospf uses it)" for i in ip_ospf)
        else:
            ospf = replace(ospf, interfaces=tuple(ip_ospf) + ospf.interfaces)
    if r.release.routing == "1.2":
        peers = {p.address for p in bfd}
        for addr, node in bfd_nodes:
            if addr not in peers:
                r.problem(node, f"protocols bgp neighbor {addr} bfd",
                          f"VyOS 1.2 refuses a neighbor's bfd without `protocols bfd peer {addr}`")
    return Routing(ospf, bgp, tuple(bfd))

