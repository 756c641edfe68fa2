"""Cross-field checks on a typed model: names, prefixes, addresses, tunnel endpoints."""

from __future__ import annotations

import bisect
import difflib
import re
from ipaddress import IPv4Address, IPv4Network

from . import platforms
from .errors import Problems, Where
from .model import Gateway, Lab, Server, Tunnel
from .tunnels import TUNNEL_TYPES, tunnel_type


def check_lab(lab: Lab, problems: Problems) -> None:
    _unique_names(lab, problems)
    _prefixes(lab, problems)
    _addresses(lab, problems)
    _tunnels(lab, problems)
    _ifnames(lab, problems)
    _config_mtus(lab, problems)
    _routing(lab, problems)


def _switch_names(lab: Lab) -> dict[str, str]:
    """The bridge nodes the plan adds for segments of more than two members, by name."""
    out = {f"sw-{s.name}": f"the LAN of site {s.name}" for s in lab.sites if len(s.servers) != 1}
    if len(lab.sites) > 2:
        out["sw-underlay"] = "the underlay"
    return out


def _unique_names(lab: Lab, problems: Problems) -> None:
    seen: dict[str, Where] = {}
    switches = _switch_names(lab)
    for site in lab.sites:
        nodes: tuple[Gateway | Server, ...] = (site.gateway, *site.servers)
        for node in nodes:
            where = node.at("name")
            if node.name in seen:
                problems.add(where, f"duplicate node name {node.name!r}", f"first defined at line {seen[node.name].line}")
            else:
                seen[node.name] = where
            if node.name in switches:
                problems.add(where, f"{node.name!r} is the name of the switch clabgen adds for {switches[node.name]}",
                             "rename this node")
    sites: dict[str, Where] = {}
    for site in lab.sites:
        if site.name in sites:
            problems.add(site.at("name"), f"duplicate site name {site.name!r}", f"first defined at line {sites[site.name].line}")
        sites[site.name] = site.at("name")
    tunnels: dict[str, Where] = {}
    for t in lab.tunnels:
        if t.name and t.name in tunnels:
            problems.add(t.at("name"), f"duplicate tunnel name {t.name!r}", f"first defined at line {tunnels[t.name].line}")
        elif t.name:
            tunnels[t.name] = t.at("name")


def _prefixes(lab: Lab, problems: Problems) -> None:
    """No two of the underlay, the LANs and the tunnel subnets overlap: each is reported against the
    first one written before it that it overlaps. Prefixes either nest or are disjoint, so the ones
    overlapping a prefix are its supernets (one lookup per shorter length) and the prefixes inside
    it (a range of the sorted starts): linear for a lab of hundreds of sites, not quadratic."""
    nets: list[tuple[IPv4Network, Where, str]] = [(lab.underlay.subnet, lab.underlay.at("subnet"), "the underlay subnet")]
    nets += [(s.lan, s.at("lan"), f"the LAN of site {s.name}") for s in lab.sites]
    nets += [(t.subnet, t.at("subnet"), f"the subnet of tunnel {t.name or '-'.join(t.endpoints) or i}")
             for i, t in enumerate(lab.tunnels) if not t.policy]
    by_net: dict[tuple[int, int], list[int]] = {}
    for i, (net, _, _) in enumerate(nets):
        by_net.setdefault((int(net.network_address), net.prefixlen), []).append(i)
    order = sorted(range(len(nets)), key=lambda i: (int(nets[i][0].network_address), nets[i][0].prefixlen))
    starts = [int(nets[i][0].network_address) for i in order]
    for i, (net, where, _) in enumerate(nets):
        start, plen = int(net.network_address), net.prefixlen
        first = None
        for length in range(plen, -1, -1):   # itself (a duplicate) and its supernets
            key = (start & ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF), length)
            first = min([j for j in by_net.get(key, ()) if j < i] + ([first] if first is not None else []), default=None)
        lo = bisect.bisect_left(starts, start)
        hi = bisect.bisect_right(starts, int(net.broadcast_address))
        inside = [order[k] for k in range(lo, hi) if order[k] < i and nets[order[k]][0].prefixlen > plen]
        first = min(inside + ([first] if first is not None else []), default=None)
        if first is not None:
            other, owhere, olabel = nets[first]
            problems.add(where, f"{net} overlaps {other}, {olabel}", f"line {owhere.line}")
        if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
            problems.add(where, f"{net} is not a usable unicast prefix")


def _in_subnet(addr: IPv4Address, net: IPv4Network, where: Where, what: str, problems: Problems) -> None:
    if addr not in net:
        problems.add(where, f"{addr} is outside {net}, {what}")
    elif net.prefixlen == 31:
        return            # both addresses of a /31 are hosts (RFC 3021)
    elif addr == net.network_address:
        problems.add(where, f"{addr} is the network address of {net}")
    elif addr == net.broadcast_address:
        problems.add(where, f"{addr} is the broadcast address of {net}")


def _addresses(lab: Lab, problems: Problems) -> None:
    used_underlay: dict[IPv4Address, tuple[Where, str]] = {}
    for site in lab.sites:
        used: dict[IPv4Address, tuple[Where, str]] = {}
        gw = site.gateway
        explicit = [(gw.address, gw.at("address"), gw.name)] + [(s.address, s.at("address"), s.name) for s in site.servers]
        for addr, where, owner in explicit:
            if addr is None:
                continue
            _in_subnet(addr, site.lan, where, f"the LAN of site {site.name}", problems)
            if addr in used:
                first, other = used[addr]
                problems.add(where, f"{addr} is already the address of {other}", f"line {first.line}")
            used.setdefault(addr, (where, owner))
        if gw.underlay_address is not None:
            where = gw.at("underlay_address")
            _in_subnet(gw.underlay_address, lab.underlay.subnet, where, "the underlay subnet", problems)
            if gw.underlay_address in used_underlay:
                first, other = used_underlay[gw.underlay_address]
                problems.add(where, f"{gw.underlay_address} is already the underlay address of {other}", f"line {first.line}")
            used_underlay.setdefault(gw.underlay_address, (where, gw.name))
    first_host = lab.underlay.first_host
    if first_host >= lab.underlay.subnet.num_addresses - 1 and lab.underlay.subnet.prefixlen < 31:
        problems.add(lab.underlay.at("first_host"), f"host {first_host} is outside {lab.underlay.subnet}",
                     f"its hosts are 1..{lab.underlay.subnet.num_addresses - 2}")
    for t in lab.tunnels:
        for i, addr in enumerate(t.addresses or ()):
            _in_subnet(addr, t.subnet, t.at(f"addresses[{i}]"), "the tunnel subnet", problems)
        if t.addresses and len(t.addresses) == 2 and t.addresses[0] == t.addresses[1]:
            problems.add(t.at("addresses[1]"), f"both tunnel ends have the address {t.addresses[0]}")


def _tunnels(lab: Lab, problems: Problems) -> None:
    gateways = {s.gateway.name: s.gateway for s in lab.sites}
    servers = {srv.name for s in lab.sites for srv in s.servers}
    pairs: dict[tuple[str, frozenset[str]], Where] = {}
    for t in lab.tunnels:
        where = t.at("endpoints")
        for i, name in enumerate(t.endpoints):
            if name in servers:
                problems.add(t.at(f"endpoints[{i}]"), f"endpoint {name!r} is a server; tunnel endpoints must be gateways",
                             f"gateways: {', '.join(gateways) or 'none'}")
            elif name not in gateways:
                close = difflib.get_close_matches(name, list(gateways), n=1, cutoff=0.6)
                problems.add(t.at(f"endpoints[{i}]"), f"endpoint {name!r} is not a gateway of any site",
                             f"did you mean {close[0]!r}?" if close else f"gateways: {', '.join(gateways) or 'none'}")
        if len(t.endpoints) == 2 and t.endpoints[0] == t.endpoints[1]:
            problems.add(t.at("endpoints[1]"), f"a tunnel from {t.endpoints[0]!r} to itself")
        key = (TUNNEL_TYPES[t.type].kernel_kind if t.type in TUNNEL_TYPES else t.type, frozenset(t.endpoints))
        if len(key[1]) == 2 and key in pairs:
            problems.add(where, f"a second {t.type} tunnel between {' and '.join(sorted(key[1]))}",
                         f"the first is at line {pairs[key].line}; Linux allows one {t.type} tunnel per pair of addresses")
        pairs.setdefault(key, where)
        ttype = TUNNEL_TYPES.get(t.type)
        for name in t.endpoints:
            gw = gateways.get(name)
            if gw is None or ttype is None:
                continue
            pname = gw.platform or lab.defaults.gateway_platform
            if not platforms.load(pname).supports(t.type):
                problems.add(t.at("type"), f"platform {pname} of {name} does not support tunnel type {t.type!r}")
        esp = t.crypto.esp_framing if t.crypto else None
        if ttype and t.mtu is not None and t.mtu > ttype.max_mtu(lab.underlay.mtu, esp):
            limit = ttype.max_mtu(lab.underlay.mtu, esp)
            problems.add(t.at("mtu"), f"tunnel MTU {t.mtu} is above {limit}, the underlay MTU {lab.underlay.mtu} "
                                      f"minus {ttype.overhead} bytes of {t.type} overhead")


def _config_mtus(lab: Lab, problems: Problems) -> None:
    """An MTU a gateway's config will state must be one its platform accepts (VyOS 1.2 refuses an
    ethernet MTU above 9000 at commit, for instance)."""
    from .planned import CLAB_DEFAULT_MTU
    seen: set[tuple[str, str]] = set()
    gateways = {s.gateway.name: s.gateway for s in lab.sites}
    for gw in gateways.values():
        pname = gw.platform or lab.defaults.gateway_platform
        facts = platforms.load(pname).facts
        low, high = facts.mtu.get("ethernet", (0, 1 << 16))
        written = facts.ethernet_mtu_in_config or lab.underlay.mtu != CLAB_DEFAULT_MTU
        if len(lab.sites) > 1 and written and not low <= lab.underlay.mtu <= high and (pname, "u") not in seen:
            seen.add((pname, "u"))
            problems.add(lab.underlay.at("mtu"), f"underlay MTU {lab.underlay.mtu} is outside {low}..{high}, "
                                                 f"the ethernet MTUs {pname} accepts")
    for t in lab.tunnels:
        ttype = TUNNEL_TYPES.get(t.type)
        if ttype is None or t.policy:
            continue
        mtu = tunnel_mtu(lab, t)
        for name in t.endpoints:
            end = gateways.get(name)
            if end is None:
                continue
            pname = end.platform or lab.defaults.gateway_platform
            facts = platforms.load(pname).facts
            low, high = facts.mtu.get(ttype.ifname_kind, (0, 1 << 16))
            if (facts.tunnel_mtu_in_config or ttype.mtu_in_config or t.mtu is not None) and not low <= mtu <= high:
                where = t.at("mtu") if t.mtu is not None else lab.underlay.at("mtu")
                problems.add(where, f"tunnel MTU {mtu} of {t.name or '-'.join(t.endpoints)} is outside {low}..{high}, "
                                    f"the tunnel MTUs {pname} accepts", "set the tunnel's mtu explicitly"
                             if t.mtu is None else "")
                break


def tunnel_mtu(lab: Lab, t: Tunnel) -> int:
    """A tunnel's MTU: explicit, else what its overhead leaves of the underlay MTU, capped at the
    highest MTU the ends' platforms accept for it where their configs write it (WireGuard on VyOS
    1.2: 9000, so the default 9500 underlay gives 9000 rather than 9440)."""
    ttype = tunnel_type(t.type, t.policy)
    if t.mtu is not None:
        return t.mtu
    mtu = ttype.max_mtu(lab.underlay.mtu, t.crypto.esp_framing if t.crypto else None)
    if t.policy:
        return mtu
    gateways = {s.gateway.name: s.gateway for s in lab.sites}
    for name in t.endpoints:
        gw = gateways.get(name)
        if gw is None:
            continue
        facts = platforms.load(gw.platform or lab.defaults.gateway_platform).facts
        if ttype.mtu_in_config or facts.tunnel_mtu_in_config:
            mtu = min(mtu, facts.mtu.get(ttype.ifname_kind, (0, mtu))[1])
    return mtu


def tunnel_names(lab: Lab) -> list[str]:
    """Each tunnel's name as the plan names it (explicit, else endpoint0-endpoint1-type)."""
    return [t.name or f"{t.endpoints[0]}-{t.endpoints[1]}-{t.type}" if len(t.endpoints) == 2 else (t.name or "")
            for t in lab.tunnels]


def _routing(lab: Lab, problems: Problems) -> None:
    """Routing options that cannot work together, with what each gateway's platform renders."""
    from . import routing
    r = lab.routing
    dynamic = routing.get(r.type).dynamic if r.type in routing.ROUTING else False
    lacking: dict[str, list[str]] = {}
    for site in lab.sites:
        gw = site.gateway
        pname = gw.platform or lab.defaults.gateway_platform
        if not platforms.load(pname).supports_routing(r.type):
            lacking.setdefault(pname, []).append(gw.name)
        if gw.loopback is not None and not dynamic:
            problems.add(gw.at("loopback"), f"a loopback is used by dynamic routing (ospf, bgp), not {r.type}")
        if gw.asn is not None and r.type != "bgp":
            problems.add(gw.at("asn"), f"an AS number is used by routing bgp, not {r.type}")
    for pname, gws in lacking.items():
        problems.add(r.at("type"), f"platform {pname} ({', '.join(gws)}) does not render routing {r.type!r}",
                     f"it renders: {', '.join(platforms.load(pname).facts.routing)}")
    names = tunnel_names(lab)
    for name, opts in r.tunnels.items():
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            problems.add(opts.where, f"no tunnel named {name!r}",
                         f"did you mean {close[0]!r}?" if close else f"tunnels: {', '.join(names) or 'none'}")
    if r.hello >= r.dead:
        problems.add(r.at("dead"), f"dead interval {r.dead} must be longer than the hello interval {r.hello}")
    if r.keepalive >= r.holdtime:
        problems.add(r.at("holdtime"), f"holdtime {r.holdtime} must be longer than keepalive {r.keepalive}")
    if r.bfd and not dynamic:
        problems.add(r.at("bfd"), f"bfd works with routing ospf or bgp, not {r.type}")
    if r.bfd and r.type == "bgp" and r.ibgp == "loopback":
        problems.add(r.at("bfd"), "bfd over iBGP sessions between loopbacks (multihop BFD) is not modelled",
                     "use ibgp: tunnel with bfd")
    for t in lab.tunnels:
        if t.policy and dynamic and t.crypto is not None:
            problems.add(t.crypto.at("mode"), f"routing {r.type} needs a tunnel interface to run over; a "
                                              "policy-based IPsec tunnel has none",
                         "mode: gre runs routing protocols over GRE inside IPsec; or use routing: static")
    if dynamic:
        _loopbacks(lab, problems)
    if r.type == "ospf":
        _ospf_areas(lab, names, problems)


def _loopbacks(lab: Lab, problems: Problems) -> None:
    pool = lab.routing.loopbacks
    where = lab.routing.at("loopbacks")
    nets = [(lab.underlay.subnet, "the underlay subnet")] + [(s.lan, f"the LAN of site {s.name}") for s in lab.sites]
    nets += [(t.subnet, f"the subnet of tunnel {t.name or '-'.join(t.endpoints)}") for t in lab.tunnels]
    for net, label in nets:
        if pool.overlaps(net):
            problems.add(where, f"loopback pool {pool} overlaps {net}, {label}")
            break
    explicit: dict[IPv4Address, str] = {}
    for s in lab.sites:
        addr = s.gateway.loopback
        if addr is None:
            continue
        clash = next((label for net, label in nets if addr in net), None)
        if clash:
            problems.add(s.gateway.at("loopback"), f"loopback {addr} lies in {clash}")
        if addr in explicit:
            problems.add(s.gateway.at("loopback"), f"loopback {addr} is already {explicit[addr]}'s")
        explicit[addr] = s.gateway.name
    derived = sum(1 for s in lab.sites if s.gateway.loopback is None)
    free = pool.num_addresses - 2 - sum(1 for a in explicit if a in pool)
    if derived > free:
        problems.add(where, f"loopback pool {pool} has {max(free, 0)} free addresses for {derived} gateways")


def _ospf_areas(lab: Lab, names: list[str], problems: Problems) -> None:
    """Every non-backbone area must touch area 0 through a border router (no virtual links)."""
    from .routing.ospf import area_key
    r = lab.routing
    area_of: dict[str, str] = {}
    for n in names:
        own = r.tunnels[n].area if n in r.tunnels else None
        area_of[n] = own if own is not None else r.area
    areas = {area_key(a) for a in area_of.values()}
    if len(areas) < 2:
        return
    touching: dict[str, set[int]] = {}
    for t, name in zip(lab.tunnels, names):
        for e in t.endpoints:
            touching.setdefault(e, set()).add(area_key(area_of[name]))
    if 0 not in areas:
        problems.add(r.at("area"), "several OSPF areas but none is the backbone (area 0)")
        return
    for area in sorted(areas - {0}):
        if not any(area in a and 0 in a for a in touching.values()):
            where = next((r.tunnels[n].at("area") for n in names if n in r.tunnels
                          and area_key(area_of[n]) == area), r.at("area"))
            problems.add(where, f"OSPF area {area} has no border router to area 0 (a gateway with tunnels in both)")


MGMT_IF = "eth0"   # containerlab's management interface in every container


def _ifnames(lab: Lab, problems: Problems) -> None:
    """Explicit interface names: the platform's naming rule, no clash on one node, never eth0."""
    from .plan import LAN_IF, SERVER_IF, UNDERLAY_IF
    tunnel_ifnames: dict[str, list[tuple[str, str, Where]]] = {}
    for t in lab.tunnels:
        for i, end in enumerate(t.endpoints):
            if t.ifnames and i < len(t.ifnames):
                kind = TUNNEL_TYPES[t.type].ifname_kind if t.type in TUNNEL_TYPES else "tunnel"
                tunnel_ifnames.setdefault(end, []).append((t.ifnames[i], kind, t.at(f"ifnames[{i}]")))
    for site in lab.sites:
        gw = site.gateway
        rules = platforms.load(gw.platform or lab.defaults.gateway_platform).facts.ifnames
        named: list[tuple[str, str, Where]] = [
            (gw.lan_ifname or LAN_IF, "ethernet", gw.at("lan_ifname")),
            (gw.underlay_ifname or UNDERLAY_IF, "ethernet", gw.at("underlay_ifname"))]
        named += tunnel_ifnames.get(gw.name, [])
        seen: dict[str, Where] = {}
        for ifname, kind, where in named:
            rule = rules.get(kind)
            if rule and not re.match(rule, ifname):
                problems.add(where, f"{ifname!r} is not a valid {kind} interface name on {gw.platform or lab.defaults.gateway_platform}",
                             f"names must match {rule}")
            elif ifname == MGMT_IF:
                problems.add(where, f"{MGMT_IF} is containerlab's management interface", "use eth1 or higher")
            elif ifname in seen:
                problems.add(where, f"{gw.name} already has an interface {ifname!r}",
                             f"line {seen[ifname].line}" if seen[ifname].line else "")
            seen.setdefault(ifname, where)
        for srv in site.servers:
            if (srv.ifname or SERVER_IF) == MGMT_IF:
                problems.add(srv.at("ifname"), f"{MGMT_IF} is containerlab's management interface", "use net0")
