"""Intent patterns for big labs: a site template with a count, and hub-and-spoke and full-mesh
tunnel entries.

A 200-site lab written out site by site and tunnel by tunnel is 400 lines nobody reviews. These
entries say the same in one line each and expand, while the intent is read, into the ordinary
sites and tunnels the rest of clabgen already knows: checks, the plan and every output see no
difference. Each expanded value keeps the position of the pattern field it came from, so a clash
with an explicit site or tunnel is still `FILE:LINE:COL: field: message`. The order in which LANs
and tunnel subnets are carved from their pools is fixed and documented (docs/intent.md), so the
same intent always gives the same lab.
"""

from __future__ import annotations

import difflib
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from .errors import Where
from .model import Gateway, Server, Site, Tunnel
from .yamlpos import Y

if TYPE_CHECKING:
    from .intent import Reader

TEMPLATE_KEYS = ("name", "count", "start", "lans", "lan_prefix", "gateway", "servers")
TEMPLATE_GATEWAY_KEYS = ("name", "platform", "image", "lan_ifname", "underlay_ifname")
TEMPLATE_SERVER_KEYS = ("name", "image", "ifname")
# Per-node values a template cannot repeat in every site: each must differ (or is derived).
PER_NODE = ("address", "underlay_address", "loopback", "asn")
TUNNEL_PATTERNS = ("hub-spoke", "mesh")
HUB_KEYS = ("pattern", "hub", "spokes", "type", "pool", "prefix", "mtu")
MESH_KEYS = ("pattern", "gateways", "type", "pool", "prefix", "mtu")
MAX_COUNT = 4096          # sites one template makes: far beyond what a 2-core machine deploys
DEFAULT_LAN_PREFIX = 24
DEFAULT_TUNNEL_PREFIX = 30


def is_template(y: Y) -> bool:
    """A site entry with `count` is a template for that many sites."""
    return y.is_map and "count" in y.value


def is_tunnel_pattern(y: Y) -> bool:
    return y.is_map and "pattern" in y.value


def _carve(pool: IPv4Network, prefix: int, k: int) -> IPv4Network:
    """The k-th /prefix of pool in address order, without listing the ones before it."""
    return IPv4Network((int(pool.network_address) + (k << (32 - prefix)), prefix))


def _capacity(pool: IPv4Network, prefix: int) -> int:
    return 1 << (prefix - pool.prefixlen) if prefix >= pool.prefixlen else 0


def _per_node_keys(r: Reader, y: Y, what: str) -> None:
    if y.is_map:
        for key in PER_NODE:
            if key in y.keys:
                r.problems.add(y.keys[key], f"a template's {what}s cannot share one {key}",
                               "leave it derived, or write the site out on its own")


def _numbered(r: Reader, y: Y, prefix: str, last: int) -> bool:
    """The longest name the template makes must still be a name."""
    longest = f"{prefix}{last}"
    if len(longest) > 30:
        r.problems.add(y.where, f"numbered up to {last}, {prefix!r} makes {longest!r}, longer than 30 characters")
        return False
    return True


def sites_of(r: Reader, y: Y, gw_platforms: tuple[str, ...]) -> list[Site]:
    """A site template: `count` sites named <name><n> for n = start, start+1, ...; their gateways and
    servers are named <gateway><n>, <server><n>; site k (from 0) gets the k-th LAN of `lans`."""
    m = r.mapping(y, TEMPLATE_KEYS, ("name", "count", "lans", "gateway"), what="a site mapping")
    if m is None:
        return []
    name = r.name(m["name"]) if "name" in m else None
    count = r.integer(m["count"], 1, MAX_COUNT) if "count" in m else None
    start = r.integer(m["start"], 0, 1_000_000) if "start" in m else 1
    pool = r.prefix(m["lans"]) if "lans" in m else None
    lan_prefix = r.integer(m["lan_prefix"], 1, 30) if "lan_prefix" in m else DEFAULT_LAN_PREFIX
    gw = _template_gateway(r, m["gateway"], gw_platforms) if "gateway" in m else None
    servers = _template_servers(r, m["servers"]) if "servers" in m else []
    if None in (name, count, start, pool, lan_prefix, gw) or servers is None:
        return []
    assert name is not None and count is not None and start is not None and pool is not None
    assert lan_prefix is not None and gw is not None and servers is not None
    last = start + count - 1
    names_ok = _numbered(r, m["name"], name, last) & _numbered(r, m["gateway"], gw.name, last)
    for s, sy in servers:
        names_ok &= _numbered(r, sy, s.name, last)
    where_lans = m["lans"].where
    if lan_prefix < pool.prefixlen:
        r.problems.add(m.get("lan_prefix", m["lans"]).where, f"a /{lan_prefix} LAN does not fit in {pool}")
        return []
    if _capacity(pool, lan_prefix) < count:
        r.problems.add(where_lans, f"{pool} holds {_capacity(pool, lan_prefix)} /{lan_prefix} LANs, "
                                   f"not the {count} this template needs", "a larger pool or a longer lan_prefix")
        return []
    if not names_ok:
        return []
    pos = {"name": m["name"].where, "lan": where_lans, "gateway": m["gateway"].where}
    if "servers" in m:
        pos["servers"] = m["servers"].where
    out = []
    for k in range(count):
        n = start + k
        gateway = Gateway(gw.where, gw.pos, name=f"{gw.name}{n}", platform=gw.platform, image=gw.image,
                          lan_ifname=gw.lan_ifname, underlay_ifname=gw.underlay_ifname)
        members = tuple(Server(s.where, s.pos, name=f"{s.name}{n}", image=s.image, ifname=s.ifname)
                        for s, _ in servers)
        out.append(Site(y.where, pos, name=f"{name}{n}", lan=_carve(pool, lan_prefix, k), gateway=gateway,
                        servers=members))
    return out


def _template_gateway(r: Reader, y: Y, gw_platforms: tuple[str, ...]) -> Gateway | None:
    if isinstance(y.value, str):
        name = r.name(y, "a name prefix")
        return Gateway(y.where, {"name": y.where}, name=name) if name else None
    _per_node_keys(r, y, "gateway")
    m = r.mapping(y, TEMPLATE_GATEWAY_KEYS + PER_NODE, ("name",), what="a gateway name prefix or a mapping")
    if m is None or "name" not in m:
        return None
    name = r.name(m["name"], "a name prefix")
    if name is None:
        return None
    pos = {k: v.where for k, v in m.items() if k not in PER_NODE}
    return Gateway(y.where, pos, name=name,
                   platform=r.one_of(m["platform"], gw_platforms, "platform") if "platform" in m else None,
                   image=r.image(m["image"]) if "image" in m else None,
                   lan_ifname=r.ifname(m["lan_ifname"]) if "lan_ifname" in m else None,
                   underlay_ifname=r.ifname(m["underlay_ifname"]) if "underlay_ifname" in m else None)


def _template_servers(r: Reader, y: Y) -> list[tuple[Server, Y]] | None:
    out: list[tuple[Server, Y]] = []
    ok = True
    for item in r.seq(y, "a list of server name prefixes"):
        if isinstance(item.value, str):
            name = r.name(item, "a name prefix")
            if name is None:
                ok = False
                continue
            out.append((Server(item.where, {"name": item.where}, name=name), item))
            continue
        _per_node_keys(r, item, "server")
        m = r.mapping(item, TEMPLATE_SERVER_KEYS + PER_NODE, ("name",), what="a server name prefix or a mapping")
        name = r.name(m["name"], "a name prefix") if m and "name" in m else None
        if m is None or name is None:
            ok = False
            continue
        pos = {k: v.where for k, v in m.items() if k not in PER_NODE}
        out.append((Server(item.where, pos, name=name,
                           image=r.image(m["image"]) if "image" in m else None,
                           ifname=r.ifname(m["ifname"]) if "ifname" in m else None), m["name"]))
    return out if ok else None


def tunnels_of(r: Reader, y: Y, gateways: list[str]) -> list[Tunnel]:
    """A hub-and-spoke or full-mesh entry as the ordinary tunnels it stands for, in the documented
    order; subnet k (from 0) is the k-th /prefix of `pool`."""
    from .tunnels import DEFAULT_TYPE, TUNNEL_TYPES
    kind = r.one_of(y.value["pattern"], TUNNEL_PATTERNS, "tunnel pattern")
    if kind is None:
        return []
    keys = HUB_KEYS if kind == "hub-spoke" else MESH_KEYS
    m = r.mapping(y, keys, ("pattern", "hub", "pool") if kind == "hub-spoke" else ("pattern", "pool"))
    if m is None:
        return []
    ttype = r.one_of(m["type"], tuple(TUNNEL_TYPES), "tunnel type") if "type" in m else DEFAULT_TYPE
    pool = r.prefix(m["pool"], most=31) if "pool" in m else None
    prefix = r.integer(m["prefix"], 8, 31) if "prefix" in m else DEFAULT_TUNNEL_PREFIX
    mtu = r.integer(m["mtu"], 576, 65535) if "mtu" in m else None
    known = set(gateways)
    pairs: list[tuple[str, str, Where, Where]] | None
    if kind == "hub-spoke":
        pairs = _hub_pairs(r, m, y, gateways, known) if "hub" in m else None
    else:
        pairs = _mesh_pairs(r, m, y, gateways, known)
    if pairs is None or pool is None or prefix is None or ttype is None or ("mtu" in m and mtu is None):
        return []
    if prefix < pool.prefixlen or _capacity(pool, prefix) < len(pairs):
        r.problems.add(m["pool"].where, f"{pool} holds {_capacity(pool, prefix)} /{prefix} subnets, "
                                        f"not the {len(pairs)} this pattern needs", "a larger pool")
        return []
    common = {"subnet": m["pool"].where, "type": m["type"].where if "type" in m else y.where}
    if "mtu" in m:
        common["mtu"] = m["mtu"].where
    out = []
    for k, (a, b, wa, wb) in enumerate(pairs):
        pos = {**common, "endpoints": wb, "endpoints[0]": wa, "endpoints[1]": wb}
        out.append(Tunnel(y.where, pos, type=ttype, endpoints=(a, b), subnet=_carve(pool, prefix, k), mtu=mtu))
    return out


def _gateway_name(r: Reader, y: Y, known: set[str], role: str) -> str | None:
    name = r.name(y, "a gateway name")
    if name is not None and name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        r.problems.add(y.where, f"{role} {name!r} is not a gateway of any site",
                       f"did you mean {close[0]!r}?" if close else "")
        return None
    return name


def _members(r: Reader, y: Y, gateways: list[str], known: set[str], role: str,
             exclude: str | None = None) -> list[tuple[str, Where]] | None:
    """`all` (every gateway in site order, but `exclude`) or a list of gateway names."""
    if isinstance(y.value, str) and y.value == "all":
        return [(g, y.where) for g in gateways if g != exclude]
    items = r.seq(y, "all, or a list of gateway names")
    out: list[tuple[str, Where]] = []
    seen: dict[str, Where] = {}
    ok = y.is_seq
    for item in items:
        name = _gateway_name(r, item, known, role)
        if name is None:
            ok = False
        elif name == exclude:
            r.problems.add(item.where, f"{name!r} is the hub; it cannot be its own spoke")
            ok = False
        elif name in seen:
            r.problems.add(item.where, f"{name!r} is listed twice", f"first at line {seen[name].line}")
            ok = False
        else:
            seen[name] = item.where
            out.append((name, item.where))
    return out if ok else None


def _hub_pairs(r: Reader, m: dict[str, Y], y: Y, gateways: list[str],
               known: set[str]) -> list[tuple[str, str, Where, Where]] | None:
    hub = _gateway_name(r, m["hub"], known, "hub")
    if hub is None:
        return None
    spokes = _members(r, m["spokes"], gateways, known, "spoke", exclude=hub) if "spokes" in m else \
        [(g, y.where.at(f"{y.where.field}.spokes")) for g in gateways if g != hub]
    if spokes is None:
        return None
    return [(hub, s, m["hub"].where, w) for s, w in spokes]


def _mesh_pairs(r: Reader, m: dict[str, Y], y: Y, gateways: list[str],
                known: set[str]) -> list[tuple[str, str, Where, Where]] | None:
    members = _members(r, m["gateways"], gateways, known, "gateway") if "gateways" in m else \
        [(g, y.where.at(f"{y.where.field}.gateways")) for g in gateways]
    if members is None:
        return None
    if len(members) < 2:
        r.problems.add(m["gateways"].where if "gateways" in m else y.where, "a mesh needs two gateways or more")
        return None
    return [(a, b, wa, wb) for i, (a, wa) in enumerate(members) for b, wb in members[i + 1:]]
