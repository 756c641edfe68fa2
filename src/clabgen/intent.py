"""Read an intent file into a validated model.Lab, reporting every problem with file:line:col."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from pathlib import Path
from typing import Any, TypeVar

from . import checks, intent_crypto, patterns
from .errors import Problems, Where
from .model import Defaults, Gateway, Lab, Routing, Server, Site, Tunnel, TunnelRouting, Underlay
from .yamlpos import Y, load

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
NAME_MAX = 30
IFNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")   # Linux allows 15 bytes; we allow no more than that
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
T = TypeVar("T")


class Reader:
    """Typed accessors over a positioned YAML tree that record problems instead of raising."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def mapping(self, y: Y, allowed: tuple[str, ...], required: tuple[str, ...] = (),
                what: str = "a mapping") -> dict[str, Y] | None:
        if not y.is_map:
            self.problems.add(y.where, f"expected {what}, got {_kind(y.value)}")
            return None
        suggested: set[str] = set()
        for key, kw in y.keys.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
                self.problems.add(kw, f"unknown key {key!r}", hint)
                suggested.update(close)
        for key in required:
            # a misspelt required key is reported once, as the unknown key with its did-you-mean
            if key not in y.value and key not in suggested:
                self.problems.add(y.where.at(_join(y.where.field, key)), f"missing required key {key!r}")
        return {k: v for k, v in y.value.items() if k in allowed}

    def seq(self, y: Y, what: str = "a list") -> list[Y]:
        if not y.is_seq:
            self.problems.add(y.where, f"expected {what}, got {_kind(y.value)}")
            return []
        return list(y.value)

    def string(self, y: Y, what: str = "a string") -> str | None:
        if not isinstance(y.value, str) or isinstance(y.value, bool):
            self.problems.add(y.where, f"expected {what}, got {_kind(y.value)}")
            return None
        return y.value

    def name(self, y: Y, what: str = "a name") -> str | None:
        s = self.string(y, what)
        if s is None:
            return None
        problem = name_problem(s)
        if problem:
            self.problems.add(y.where, *problem)
            return None
        return s

    def ifname(self, y: Y) -> str | None:
        s = self.string(y, "an interface name")
        if s is None:
            return None
        if not IFNAME_RE.match(s) or s == "lo":
            self.problems.add(y.where, f"{s!r} is not a usable interface name",
                              "use 1-15 characters of a-z, 0-9 and '-', starting with a letter, not 'lo'")
            return None
        return s

    def image(self, y: Y) -> str | None:
        s = self.string(y, "an image reference")
        if s is not None and (not IMAGE_RE.match(s) or len(s) > 200):
            self.problems.add(y.where, f"{s!r} is not a valid container image reference")
            return None
        return s

    def integer(self, y: Y, lo: int, hi: int) -> int | None:
        if not isinstance(y.value, int) or isinstance(y.value, bool):
            text = y.value.strip() if isinstance(y.value, str) else ""
            self.problems.add(y.where, f"expected an integer, got {_kind(y.value)}",
                              f"write {text} without quotes" if text.isdigit() else "")
            return None
        if not lo <= y.value <= hi:
            self.problems.add(y.where, f"{y.value} is out of range {lo}..{hi}")
            return None
        return int(y.value)

    def prefix(self, y: Y, most: int = 30) -> IPv4Network | None:
        """A network without host bits; at most a /30 (a LAN or the underlay needs a network and a
        broadcast address besides its hosts), or a /31 where `most` allows it (a tunnel subnet:
        two hosts, RFC 3021)."""
        s = self.string(y, "an IPv4 prefix such as 10.1.5.0/24")
        if s is None:
            return None
        if "/" not in s:
            self.problems.add(y.where, f"{s!r} is not an IPv4 prefix", "write it as a.b.c.d/len, e.g. 10.1.5.0/24")
            return None
        try:
            net = IPv4Network(s, strict=False)
        except (AddressValueError, NetmaskValueError, ValueError):
            self.problems.add(y.where, f"{s!r} is not an IPv4 prefix")
            return None
        if net.network_address != IPv4Address(s.split("/")[0]):
            self.problems.add(y.where, f"{s!r} has host bits set", f"did you mean {net}?")
            return None
        if net.prefixlen == 31 and most < 31:
            self.problems.add(y.where, f"{s!r} is too small: only a tunnel subnet may be a /31",
                              "a LAN or the underlay needs a network and a broadcast address besides its hosts")
            return None
        if net.prefixlen > 31:
            self.problems.add(y.where, f"{s!r} is too small: a /{net.prefixlen} has no room for two hosts")
            return None
        return net

    def address(self, y: Y) -> IPv4Address | None:
        s = self.string(y, "an IPv4 address")
        if s is None:
            return None
        try:
            return IPv4Address(s)
        except (AddressValueError, ValueError):
            hint = "write the address without a prefix length" if "/" in s else ""
            self.problems.add(y.where, f"{s!r} is not an IPv4 address", hint)
            return None

    def boolean(self, y: Y) -> bool | None:
        if not isinstance(y.value, bool):
            self.problems.add(y.where, f"expected true or false, got {_kind(y.value)}")
            return None
        return y.value

    def area(self, y: Y) -> str | None:
        """An OSPF area: an integer 0..4294967295 or a dotted quad, kept as written."""
        if isinstance(y.value, int) and not isinstance(y.value, bool) and 0 <= y.value <= 0xFFFFFFFF:
            return str(y.value)
        if isinstance(y.value, str):
            try:
                IPv4Address(y.value)
                return y.value
            except (AddressValueError, ValueError):
                pass
        self.problems.add(y.where, f"{y.value!r} is not an OSPF area", "write an integer (0) or a dotted quad (0.0.0.1)")
        return None

    def one_of(self, y: Y, choices: tuple[str, ...], what: str) -> str | None:
        s = self.string(y, f"a {what} ({', '.join(choices)})")
        if s is None:
            return None
        if s not in choices:
            close = difflib.get_close_matches(s, choices, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"supported: {', '.join(choices)}"
            self.problems.add(y.where, f"unsupported {what} {s!r}", hint)
            return None
        return s


def name_problem(s: str) -> tuple[str, str] | None:
    """Why `s` cannot name a node, site, lab or tunnel (it ends up in file, netns and container
    names and in shell scripts), with a hint; None when it can."""
    rule = "use a-z, 0-9 and '-', starting with a letter or digit"
    if not s:
        return "the name is empty", rule
    if len(s) > NAME_MAX:
        return f"{s!r} is too long ({len(s)} characters, at most {NAME_MAX})", ""
    if NAME_RE.match(s):
        return None
    fixed = s.lower().replace("_", "-").lstrip("-")
    hint = f"did you mean {fixed!r}?" if fixed != s and NAME_RE.match(fixed) else rule
    bad = next((c for c in s if not re.match(r"[a-z0-9-]", c)), None)
    if bad is None:
        return f"{s!r} is not a safe name: it starts with {s[0]!r}", hint
    if bad.isupper():
        return f"{s!r} is not a safe name: uppercase letters are not allowed", hint
    return f"{s!r} is not a safe name: {bad!r} is not allowed", hint


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _pos(m: dict[str, Y]) -> dict[str, Where]:
    return {k: v.where for k, v in m.items()}


def _opt(m: dict[str, Y], key: str, fn: Callable[[Y], T | None], default: T) -> T:
    if key not in m:
        return default
    value = fn(m[key])
    return default if value is None else value


def read_lab(path: Path, display: str | None = None) -> Lab:
    """Load, type-check and cross-check one intent file; raise ClabgenError listing every problem."""
    tree = load(path, display)
    problems = Problems()
    r = Reader(problems)
    top = r.mapping(tree, ("name", "description", "defaults", "underlay", "sites", "tunnels", "routing", "write_secrets"),
                    ("name", "underlay", "sites"))
    assert top is not None  # yamlpos.load guarantees a mapping
    name = _opt(top, "name", r.name, "")
    if "description" in top:
        r.string(top["description"])
    from . import platforms
    gw_platforms = platforms.gateway_platforms()
    defaults = _defaults(r, top.get("defaults"), tree.where, gw_platforms)
    underlay = _underlay(r, top.get("underlay"), tree.where)
    site_items = r.seq(top["sites"], "a list of sites") if "sites" in top else []
    sites = tuple(s for y in site_items for s in
                  (patterns.sites_of(r, y, gw_platforms) if patterns.is_template(y) else [_site(r, y, gw_platforms)])
                  if s)
    if "sites" in top and top["sites"].is_seq and not top["sites"].value:
        problems.add(top["sites"].where, "at least one site is required")
    tunnels: tuple[Tunnel, ...] = ()
    if "tunnels" in top:
        gateways = [s.gateway.name for s in sites]
        tunnels = tuple(t for y in r.seq(top["tunnels"], "a list of tunnels") for t in
                        (patterns.tunnels_of(r, y, gateways) if patterns.is_tunnel_pattern(y) else [_tunnel(r, y)])
                        if t)
    routing = _routing(r, top.get("routing"), tree.where)
    _raise_in_file_order(problems)
    lab = Lab(tree.where, _pos(top), name=name, source=path, defaults=defaults, underlay=underlay,
              sites=sites, tunnels=tunnels, routing=routing,
              write_secrets=_opt(top, "write_secrets", r.boolean, False))
    checks.check_lab(lab, problems)
    _raise_in_file_order(problems)
    return lab


def _raise_in_file_order(problems: Problems) -> None:
    """Report problems top to bottom, as a compiler does; the first line is the first to fix. A
    pattern's tunnels share its positions, so one mistake there is reported once, not per tunnel."""
    problems.items = list(dict.fromkeys(problems.items))
    problems.items.sort(key=lambda p: (p.where is None or p.where.line == 0,
                                       p.where.line if p.where else 0, p.where.col if p.where else 0))
    problems.raise_if_any()


def _defaults(r: Reader, y: Y | None, root: Where, gw_platforms: tuple[str, ...]) -> Defaults:
    if y is None:
        return Defaults(root.at("defaults"))
    m = r.mapping(y, ("gateway", "server")) or {}
    platform, gimage, simage = "vyos-1.2", None, "clabgen/node:latest"
    pos: dict[str, Where] = {}
    if "gateway" in m:
        g = r.mapping(m["gateway"], ("platform", "image")) or {}
        platform = _opt(g, "platform", lambda v: r.one_of(v, gw_platforms, "platform"), platform)
        gimage = _opt(g, "image", r.image, None)
        pos.update({f"gateway.{k}": v.where for k, v in g.items()})
    if "server" in m:
        s = r.mapping(m["server"], ("image",)) or {}
        simage = _opt(s, "image", r.image, simage)
        pos.update({f"server.{k}": v.where for k, v in s.items()})
    return Defaults(y.where, pos, gateway_platform=platform, gateway_image=gimage, server_image=simage)


def _underlay(r: Reader, y: Y | None, root: Where) -> Underlay:
    if y is None:
        return Underlay(root.at("underlay"))
    m = r.mapping(y, ("subnet", "mtu", "first_host"), ("subnet",)) or {}
    return Underlay(y.where, _pos(m),
                    subnet=_opt(m, "subnet", r.prefix, IPv4Network("0.0.0.0/32")),
                    mtu=_opt(m, "mtu", lambda v: r.integer(v, 1280, 65535), 9500),
                    first_host=_opt(m, "first_host", lambda v: r.integer(v, 1, 65534), 10))


def _site(r: Reader, y: Y, gw_platforms: tuple[str, ...]) -> Site | None:
    m = r.mapping(y, ("name", "lan", "gateway", "servers"), ("name", "lan", "gateway"), what="a site mapping")
    if m is None:
        return None
    gateway = _gateway(r, m["gateway"], gw_platforms) if "gateway" in m else None
    servers: list[Server] = []
    if "servers" in m:
        servers = [s for s in (_server(r, v) for v in r.seq(m["servers"], "a list of servers")) if s]
    return Site(y.where, _pos(m), name=_opt(m, "name", r.name, ""),
                lan=_opt(m, "lan", r.prefix, IPv4Network("0.0.0.0/32")),
                gateway=gateway or Gateway(y.where), servers=tuple(servers))


def _gateway(r: Reader, y: Y, gw_platforms: tuple[str, ...]) -> Gateway | None:
    if isinstance(y.value, str):
        name = r.name(y)
        return Gateway(y.where, {"name": y.where}, name=name) if name else None
    m = r.mapping(y, ("name", "platform", "image", "address", "underlay_address", "lan_ifname", "underlay_ifname",
                      "loopback", "asn", "wireguard_key"), ("name",), what="a gateway name or a mapping")
    if m is None:
        return None
    return Gateway(y.where, _pos(m), name=_opt(m, "name", r.name, ""),
                   platform=_opt(m, "platform", lambda v: r.one_of(v, gw_platforms, "platform"), None),
                   image=_opt(m, "image", r.image, None),
                   address=_opt(m, "address", r.address, None),
                   underlay_address=_opt(m, "underlay_address", r.address, None),
                   lan_ifname=_opt(m, "lan_ifname", r.ifname, None),
                   underlay_ifname=_opt(m, "underlay_ifname", r.ifname, None),
                   loopback=_opt(m, "loopback", r.address, None),
                   asn=_opt(m, "asn", lambda v: r.integer(v, 1, ASN_MAX), None),
                   wireguard_key=_opt(m, "wireguard_key", lambda v: intent_crypto.path(r, v), None))


def _server(r: Reader, y: Y) -> Server | None:
    if isinstance(y.value, str):
        name = r.name(y)
        return Server(y.where, {"name": y.where}, name=name) if name else None
    m = r.mapping(y, ("name", "address", "image", "ifname"), ("name",), what="a server name or a mapping")
    if m is None:
        return None
    return Server(y.where, _pos(m), name=_opt(m, "name", r.name, ""),
                  address=_opt(m, "address", r.address, None), image=_opt(m, "image", r.image, None),
                  ifname=_opt(m, "ifname", r.ifname, None))


def _pair(r: Reader, y: Y, key: str, pos: dict[str, Where], what: str, count_message: str,
          parse: Callable[[Y], T | None]) -> list[T | None]:
    """A per-endpoint list (endpoints, addresses, ifnames): each item parsed and positioned."""
    items = r.seq(y, what)
    pos.update({f"{key}[{i}]": item.where for i, item in enumerate(items)})
    if y.is_seq and len(items) != 2:
        r.problems.add(y.where, f"{count_message}, got {len(items)}")
    return [parse(i) for i in items]


def _tunnel(r: Reader, y: Y) -> Tunnel | None:
    from .tunnels import DEFAULT_TYPE, TUNNEL_TYPES
    policy = intent_crypto.policy_mode(y)
    m = r.mapping(y, ("name", "type", "endpoints", "subnet", "addresses", "ifnames", "mtu", *intent_crypto.OPTIONS),
                  ("endpoints",) if policy else ("endpoints", "subnet"))
    if m is None:
        return None
    if policy:
        intent_crypto.no_interface(r, m)
    ttype = _opt(m, "type", lambda v: r.one_of(v, tuple(TUNNEL_TYPES), "tunnel type"), DEFAULT_TYPE)
    crypto = None
    for key in intent_crypto.OPTIONS:
        if key in m:
            crypto = intent_crypto.read(r, ttype, key, m[key])
    endpoints: tuple[str, ...] = ()
    pos = _pos(m)
    if "endpoints" in m:
        names = _pair(r, m["endpoints"], "endpoints", pos, "a list of 2 gateway names",
                      "a tunnel has exactly 2 endpoints", lambda i: r.name(i, "a gateway name"))
        endpoints = tuple(n for n in names if n)
    addresses = ifnames = None
    if "addresses" in m:
        parsed = _pair(r, m["addresses"], "addresses", pos, "a list of 2 addresses",
                       "give one address per endpoint (2)", r.address)
        addresses = tuple(a for a in parsed if a) if all(parsed) else None
    if "ifnames" in m:
        given = _pair(r, m["ifnames"], "ifnames", pos, "a list of 2 interface names",
                      "give one interface name per endpoint (2)", r.ifname)
        ifnames = tuple(n for n in given if n) if all(given) else None
    return Tunnel(y.where, pos, name=_opt(m, "name", r.name, None), ifnames=ifnames, type=ttype, crypto=crypto,
                  endpoints=endpoints,
                  subnet=_opt(m, "subnet", lambda v: r.prefix(v, most=31), IPv4Network("0.0.0.0/32")),
                  addresses=addresses, mtu=_opt(m, "mtu", lambda v: r.integer(v, 576, 65535), None))


ASN_MAX = 4294967294
# Keys of the routing mapping: those every type takes, then each protocol's own.
ROUTING_COMMON = ("type", "loopbacks", "bfd")
ROUTING_KEYS: dict[str, tuple[str, ...]] = {
    "static": (),
    "ospf": ("area", "cost", "hello", "dead", "retransmit", "passive_lans", "tunnels"),
    "bgp": ("as_base", "ibgp", "keepalive", "holdtime", "announce"),
}
ANNOUNCE = ("lans", "loopbacks")


def _routing(r: Reader, y: Y | None, root: Where) -> Routing:
    from .routing import ROUTING
    types = tuple(ROUTING)
    if y is None:
        return Routing(root.at("routing"))
    if isinstance(y.value, str):
        kind = r.one_of(y, types, "routing type")
        return Routing(y.where, {"type": y.where}, type=kind or "static")
    allowed = ROUTING_COMMON + tuple(k for keys in ROUTING_KEYS.values() for k in keys)
    m = r.mapping(y, allowed, ("type",)) or {}
    kind = _opt(m, "type", lambda v: r.one_of(v, types, "routing type"), "static")
    for key, v in m.items():
        if key not in ROUTING_COMMON and key not in ROUTING_KEYS.get(kind, ()):
            owner = next((t for t, keys in ROUTING_KEYS.items() if key in keys), "?")
            r.problems.add(v.key_where or v.where, f"{key!r} is an option of routing type {owner}, not {kind}")
    d = Routing(Where(""))
    return Routing(
        y.where, _pos(m), type=kind,
        loopbacks=_opt(m, "loopbacks", r.prefix, d.loopbacks),
        bfd=_opt(m, "bfd", r.boolean, d.bfd),
        area=_opt(m, "area", r.area, d.area),
        cost=_opt(m, "cost", lambda v: r.integer(v, 1, 65535), d.cost),
        hello=_opt(m, "hello", lambda v: r.integer(v, 1, 65535), d.hello),
        dead=_opt(m, "dead", lambda v: r.integer(v, 1, 65535), d.dead),
        retransmit=_opt(m, "retransmit", lambda v: r.integer(v, 3, 65535), d.retransmit),
        passive_lans=_opt(m, "passive_lans", r.boolean, d.passive_lans),
        tunnels=_routing_tunnels(r, m["tunnels"]) if "tunnels" in m else {},
        as_base=_opt(m, "as_base", lambda v: r.integer(v, 1, ASN_MAX), d.as_base),
        ibgp=_opt(m, "ibgp", lambda v: r.one_of(v, ("tunnel", "loopback"), "iBGP peering"), d.ibgp),
        keepalive=_opt(m, "keepalive", lambda v: r.integer(v, 1, 65535), d.keepalive),
        holdtime=_opt(m, "holdtime", lambda v: r.integer(v, 4, 65535), d.holdtime),
        announce=_opt(m, "announce", lambda v: _announce(r, v), d.announce))


def _routing_tunnels(r: Reader, y: Y) -> dict[str, TunnelRouting]:
    m = r.mapping(y, tuple(y.value) if y.is_map else (), what="a mapping of tunnel name to options") or {}
    out = {}
    for name, v in m.items():
        opts = r.mapping(v, ("cost", "area"), what="a mapping (cost, area)") or {}
        where = (v.key_where or v.where).at(v.where.field)
        out[name] = TunnelRouting(where, _pos(opts), cost=_opt(opts, "cost", lambda x: r.integer(x, 1, 65535), None),
                                  area=_opt(opts, "area", r.area, None))
    return out


def _announce(r: Reader, y: Y) -> tuple[str, ...] | None:
    items = [r.one_of(i, ANNOUNCE, "announcement") for i in r.seq(y, "a list (lans, loopbacks)")]
    return tuple(i for i in items if i) if all(items) else None
