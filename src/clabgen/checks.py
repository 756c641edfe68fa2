"""Cross-field checks on a typed model: names, prefixes, addresses, tunnel endpoints."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from . import platforms
from .errors import Problems, Where
from .model import Lab
from .tunnels import TUNNEL_TYPES


def check_lab(lab: Lab, problems: Problems) -> None:
    _unique_names(lab, problems)
    _prefixes(lab, problems)
    _addresses(lab, problems)
    _tunnels(lab, problems)


def _unique_names(lab: Lab, problems: Problems) -> None:
    seen: dict[str, Where] = {}
    for site in lab.sites:
        for node in (site.gateway, *site.servers):
            where = node.at("name")
            if node.name in seen:
                problems.add(where, f"duplicate node name {node.name!r}", f"first defined at line {seen[node.name].line}")
            else:
                seen[node.name] = where
    sites: dict[str, Where] = {}
    for site in lab.sites:
        if site.name in sites:
            problems.add(site.at("name"), f"duplicate site name {site.name!r}", f"first defined at line {sites[site.name].line}")
        sites[site.name] = site.at("name")
    tunnels: dict[str, Where] = {}
    for t in lab.tunnels:
        if t.name and t.name in tunnels:
            problems.add(t.at("name"), f"duplicate tunnel name {t.name!r}")
        if t.name:
            tunnels[t.name] = t.at("name")


def _prefixes(lab: Lab, problems: Problems) -> None:
    nets: list[tuple[IPv4Network, Where, str]] = [(lab.underlay.subnet, lab.underlay.at("subnet"), "underlay.subnet")]
    nets += [(s.lan, s.at("lan"), f"site {s.name} lan") for s in lab.sites]
    nets += [(t.subnet, t.at("subnet"), f"tunnel {t.name or i} subnet") for i, t in enumerate(lab.tunnels)]
    for i, (net, where, _) in enumerate(nets):
        for other, owhere, olabel in nets[:i]:
            if net.overlaps(other):
                problems.add(where, f"{net} overlaps {olabel} {other}", f"defined at line {owhere.line}")
                break
        if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
            problems.add(where, f"{net} is not a usable unicast prefix")


def _in_subnet(addr: IPv4Address, net: IPv4Network, where: Where, what: str, problems: Problems) -> None:
    if addr not in net:
        problems.add(where, f"{addr} is outside {what} {net}")
    elif addr == net.network_address:
        problems.add(where, f"{addr} is the network address of {net}")
    elif addr == net.broadcast_address:
        problems.add(where, f"{addr} is the broadcast address of {net}")


def _addresses(lab: Lab, problems: Problems) -> None:
    used_underlay: dict[IPv4Address, Where] = {}
    for site in lab.sites:
        used: dict[IPv4Address, Where] = {}
        gw = site.gateway
        explicit = [(gw.address, gw.at("address"))] + [(s.address, s.at("address")) for s in site.servers]
        for addr, where in explicit:
            if addr is None:
                continue
            _in_subnet(addr, site.lan, where, "the site's LAN", problems)
            if addr in used:
                problems.add(where, f"address {addr} is already used at line {used[addr].line}")
            used[addr] = where
        if gw.underlay_address is not None:
            where = gw.at("underlay_address")
            _in_subnet(gw.underlay_address, lab.underlay.subnet, where, "the underlay subnet", problems)
            if gw.underlay_address in used_underlay:
                problems.add(where, f"underlay address {gw.underlay_address} is already used at line {used_underlay[gw.underlay_address].line}")
            used_underlay[gw.underlay_address] = where
    for t in lab.tunnels:
        for addr in t.addresses or ():
            _in_subnet(addr, t.subnet, t.at("addresses"), "the tunnel subnet", problems)
        if t.addresses and len(set(t.addresses)) != len(t.addresses):
            problems.add(t.at("addresses"), "the two tunnel addresses are the same")


def _tunnels(lab: Lab, problems: Problems) -> None:
    gateways = {s.gateway.name: s.gateway for s in lab.sites}
    servers = {srv.name for s in lab.sites for srv in s.servers}
    pairs: dict[tuple[str, frozenset[str]], Where] = {}
    for t in lab.tunnels:
        where = t.at("endpoints")
        for name in t.endpoints:
            if name in servers:
                problems.add(where, f"endpoint {name!r} is a server; tunnel endpoints must be gateways")
            elif name not in gateways:
                problems.add(where, f"endpoint {name!r} is not a gateway of any site",
                             f"gateways: {', '.join(gateways) or 'none'}")
        if len(t.endpoints) == 2 and t.endpoints[0] == t.endpoints[1]:
            problems.add(where, f"a tunnel from {t.endpoints[0]!r} to itself")
        key = (t.type, frozenset(t.endpoints))
        if len(key[1]) == 2 and key in pairs:
            problems.add(where, f"a second {t.type} tunnel between {' and '.join(sorted(key[1]))}",
                         f"Linux accepts one {t.type} tunnel per local/remote pair (first at line {pairs[key].line})")
        pairs.setdefault(key, where)
        ttype = TUNNEL_TYPES.get(t.type)
        for name in t.endpoints:
            gw = gateways.get(name)
            if gw is None or ttype is None:
                continue
            pname = gw.platform or lab.defaults.gateway_platform
            if not platforms.load(pname).supports(t.type):
                problems.add(t.at("type"), f"platform {pname} of {name} does not support tunnel type {t.type!r}")
        if ttype and t.mtu is not None and t.mtu > lab.underlay.mtu - ttype.overhead:
            problems.add(t.at("mtu"), f"tunnel MTU {t.mtu} exceeds underlay MTU {lab.underlay.mtu} minus the "
                                      f"{t.type} overhead of {ttype.overhead} bytes ({lab.underlay.mtu - ttype.overhead})")
