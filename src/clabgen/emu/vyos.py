"""Read the dataplane subset of a VyOS config.boot: what the emulation applies, and what is wrong.

"VyOS dataplane emulated": interface addresses and MTU, ipip/gre tunnels (and their TTL) and static
routes become netlink calls (apply.py); protocols ospf, bgp and bfd are read by vyos_routing.py and
run by FRR (frr.py, frrd.py). Every leaf of that subset is checked against the values the config's
VyOS release accepts (VyOS's own interface definitions), because a value VyOS would refuse must
fail the deploy at its FILE:LINE instead of being skipped or reaching the kernel half-applied.
Values VyOS accepts that this emulation does not model (dhcp, IPv6, gretap, rip ...) are listed
as not applied, never silently dropped. Every problem of every file is reported at once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, ip_address, ip_interface
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..errors import ClabgenError, Problem, Problems, Where
from ..tunnels import TUNNEL_TYPES
from ..vyos_config import CNode, parse_boot
from .routing_conf import OspfInterface, Routing

if TYPE_CHECKING:
    from .vyos_crypto import Ipsec, WgInterface

STATIC_METRIC = 20      # FRR installs static routes with metric 20 (the seed's `ip r s`)
# Leaves that change nothing in a namespace's dataplane (link negotiation, IRQ placement, text).
INERT = {"duplex", "speed", "smp-affinity", "description", "hw-id", "multicast"}
T = TypeVar("T")


@dataclass(frozen=True)
class Release:
    """What one VyOS release accepts for the leaves the emulation applies (its interface definitions)."""

    name: str
    ethernet_names: str                 # regex a `interfaces ethernet` tag must match
    ethernet_shown: str                 # the same, for people
    ethernet_mtu: tuple[int, int]
    tunnel_mtu: tuple[int, int]
    encapsulations: tuple[str, ...]
    local_leaf: str                     # a tunnel's local address: local-ip until 1.2, source-address since 1.3
    remote_leaf: str
    routing: str = "1.4"                # routing syntax: "1.2" (also 1.3's), "1.4" (since 1.4), "any"

    @property
    def label(self) -> str:
        return "VyOS" if self.name == "any" else f"VyOS {self.name}"


_ENCAP_12 = ("gre", "gre-bridge", "ip6gre", "ip6ip6", "ipip", "ipip6", "sit")
_ENCAP_13 = ("gre", "gretap", "ip6gre", "ip6ip6", "ipip", "ipip6", "sit")
_ENCAP_14 = ("erspan", "gre", "gretap", "ip6erspan", "ip6gre", "ip6gretap", "ip6ip6", "ipip", "ipip6", "sit")
_ETH_12 = (r"(eth|lan)[0-9]+", "ethN or lanN")
_ETH_13 = (r"(eth|lan)[0-9]+|(eno|ens|enp|enx).+", "ethN, lanN, eno*, ens*, enp* or enx*")
RELEASES = {
    "1.2": Release("1.2", *_ETH_12, (68, 9000), (64, 8024), _ENCAP_12, "local-ip", "remote-ip", "1.2"),
    "1.3": Release("1.3", *_ETH_13, (68, 16000), (64, 8024), _ENCAP_13, "source-address", "remote", "1.2"),
    "1.4": Release("1.4", *_ETH_13, (68, 16000), (68, 16000), _ENCAP_14, "source-address", "remote"),
}
# A config.boot without a release footer (written by hand): whatever some release accepts.
ANY_RELEASE = Release("any", *_ETH_13, (68, 16000), (64, 16000),
                      tuple(sorted(set(_ENCAP_12 + _ENCAP_14))), "source-address", "remote", "any")
KNOWN_ENCAPSULATIONS = set(ANY_RELEASE.encapsulations)
# `interfaces tunnel` encapsulations the emulation builds (WireGuard has interfaces of its own; IPsec's
# GRE tunnels are gre).
EMULATED_ENCAPSULATIONS = tuple(dict.fromkeys(t.vyos_encapsulation for t in TUNNEL_TYPES.values() if t.vyos_encapsulation))
# Encapsulations whose underlay is IPv6: VyOS wants IPv6 endpoints for these, IPv4 for the others.
IPV6_UNDERLAY = {"ipip6", "ip6ip6", "ip6gre", "ip6gretap", "ip6erspan"}
# VyOS 1.4's constraint on `protocols static route X interface`, besides an interface that exists.
ROUTE_IFNAME = re.compile(r"(bond|br|dum|en|ersp|eth|gnv|ifb|ipoe|lan|l2tp|l2tpeth|macsec|peth|ppp|pppoe|pptp|"
                          r"sstp|sstpc|tun|veth|vti|vtun|vxlan|wg|wlan|wwan)[0-9]+(.\d+)?|lo")
_RELEASE_LINE = re.compile(r"^\s*(?:/\*|//)\s*Release version:\s*(\d+)\.(\d+)", re.M)   # the footer comment
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]+")


def release_of(text: str) -> Release:
    """The release named in the footer VyOS writes (`Release version: 1.2.8`); 1.5 and later as 1.4."""
    m = _RELEASE_LINE.search(text)
    if not m:
        return ANY_RELEASE
    version = (int(m.group(1)), int(m.group(2)))
    name = f"{version[0]}.{version[1]}"
    if name in RELEASES:
        return RELEASES[name]
    return replace(RELEASES["1.4"], name=name) if version > (1, 4) else ANY_RELEASE


@dataclass(frozen=True)
class At(Generic[T]):
    """A value read from config.boot with its line and config path, so a refusal can point at it."""

    value: T
    line: int
    path: str                                   # `interfaces ethernet eth1 address`


@dataclass(frozen=True)
class Interface:
    ifname: str
    path: str                                   # `interfaces ethernet eth1`, for messages
    addresses: tuple[At[IPv4Interface], ...]
    mtu: At[int] | None
    disabled: bool = False
    line: int = 0


@dataclass(frozen=True)
class Tunnel:
    ifname: str
    path: str
    mode: str
    local: At[str]
    remote: At[str]
    addresses: tuple[At[IPv4Interface], ...]
    mtu: At[int] | None
    line: int = 0
    ttl: At[int] | None = None                  # `parameters ip ttl`; None: the kernel's inherit


@dataclass(frozen=True)
class StaticRoute:
    prefix: IPv4Network
    path: str                                   # `protocols static route 10.1.8.0/24`
    next_hops: tuple[At[IPv4Address], ...]
    interfaces: tuple[At[str], ...] = ()
    line: int = 0


@dataclass
class DeviceConfig:
    file: str = "config.boot"
    release: str = ANY_RELEASE.name
    interfaces: list[Interface] = field(default_factory=list)
    tunnels: list[Tunnel] = field(default_factory=list)
    routes: list[StaticRoute] = field(default_factory=list)
    routing: Routing = field(default_factory=Routing)  # protocols ospf/bgp/bfd, run by FRR
    wireguard: list[WgInterface] = field(default_factory=list)   # interfaces wireguard (vyos_crypto.py)
    ipsec: Ipsec | None = None                                   # vpn ipsec, run by strongSwan's charon
    ignored: list[str] = field(default_factory=list)   # config paths this emulation does not apply
    notes: list[str] = field(default_factory=list)     # what VyOS would warn about on commit

    def where(self, line: int, path: str = "") -> Where:
        return Where(self.file, line, 0, path)

    def underlay_mtu(self, local: str, link_mtus: dict[str, int]) -> int | None:
        """MTU of the interface whose subnet holds `local`: the kernel derives a tunnel's MTU from it."""
        for i in self.interfaces:
            for a in i.addresses:
                if IPv4Address(local) in a.value.network:
                    return i.mtu.value if i.mtu else link_mtus.get(i.ifname)
        return None


# --- value checks: each returns the parsed value or raises ValueError saying what is wrong -------


def _address(value: str) -> IPv4Address | IPv6Address:
    if "%" not in value:            # Python takes fe80::1%eth0; VyOS's validators do not
        try:
            return ip_address(value)
        except ValueError:
            pass
    raise ValueError(f"{value} is not an IPv4 or IPv6 address")


def _prefixlen(text: str, version: int) -> int:
    top = 32 if version == 4 else 128
    if not _DIGITS.fullmatch(text) or int(text) > top:
        raise ValueError(f"prefix length {text} is out of range 0..{top}")
    return int(text)


def host_address(value: str) -> IPv4Interface | IPv6Interface:
    """VyOS's ip-host: address/prefix, not the network address of its prefix (except /31, /32, /127, /128)."""
    addr, slash, plen = value.partition("/")
    if not slash:
        raise ValueError("no prefix length (write address/prefix, e.g. 10.1.5.1/24)")
    ip = _address(addr)
    iface = ip_interface(f"{ip}/{_prefixlen(plen, ip.version)}")
    if iface.network.prefixlen < ip.max_prefixlen - 1 and iface.ip == iface.network.network_address:
        raise ValueError(f"{iface.ip} is the network address of {iface.network}, not a host address")
    return iface


def ipv4_prefix(value: str) -> IPv4Network:
    """VyOS's ipv4-prefix: an IPv4 network with no host bits set."""
    addr, slash, plen = value.partition("/")
    if not slash:
        raise ValueError("no prefix length (write network/prefix, e.g. 10.1.8.0/24)")
    ip = _address(addr)
    if not isinstance(ip, IPv4Address):
        raise ValueError("an IPv6 prefix (IPv6 static routes go under `route6`)")
    net = IPv4Network(f"{ip}/{_prefixlen(plen, 4)}", strict=False)
    if net.network_address != ip:
        raise ValueError(f"host bits set (the network is {net})")
    return net


def ipv4_address(value: str) -> IPv4Address:
    try:
        return IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value} is not an IPv4 address") from None


def integer_in(bounds: tuple[int, int]) -> Callable[[str], int]:
    def check(value: str) -> int:
        if not _DIGITS.fullmatch(value):
            raise ValueError("not an integer")
        if not bounds[0] <= int(value) <= bounds[1]:
            raise ValueError("out of range")
        return int(value)
    return check


def _arg(node: CNode) -> str | None:
    """A node's value whether written as a leaf (`next-hop 1.1.1.2`) or a block (`next-hop 1.1.1.2 { }`)."""
    return node.value if node.leaf else node.tag


def _named(node: CNode) -> str:
    arg = _arg(node)
    return f"{node.name} {arg}" if arg is not None else node.name


# --- reading one file ---------------------------------------------------------------------------


class _Reader:
    """One config.boot being read: its release, the DeviceConfig built so far, the problems found."""

    def __init__(self, file: str, release: Release) -> None:
        self.release = release
        self.cfg = DeviceConfig(file=file, release=release.name)
        self.problems = Problems()
        self.ip_ospf: list[OspfInterface] = []      # 1.2's `interfaces ... ip ospf`, for protocols ospf

    def problem(self, node: CNode, path: str, message: str, hint: str = "") -> None:
        self.problems.add(self.cfg.where(node.line, path), message, hint)

    def value(self, node: CNode, path: str, check: Callable[[str], T], hint: str = "") -> T | None:
        """The checked value of a leaf or tag, or None after recording why it is invalid."""
        raw = _arg(node)
        if raw is None:
            self.problem(node, path, "needs a value", hint)
            return None
        try:
            return check(raw)
        except ValueError as exc:
            self.problem(node, path, f"invalid value '{raw}': {exc}", hint)
            return None

    def not_applied(self, text: str) -> None:
        self.cfg.ignored.append(text)

    def valueless(self, node: CNode, path: str) -> None:
        if _arg(node) is not None:
            self.problem(node, f"{path} {node.name}", f"takes no value, got '{_arg(node)}'")

    def addresses(self, nodes: Iterable[CNode], path: str, dhcp: bool) -> tuple[At[IPv4Interface], ...]:
        """IPv4 host addresses are applied; IPv6 and (on ethernet) dhcp/dhcpv6 are valid but not emulated."""
        accepts = "an IPv4 or IPv6 address/prefix" + (", dhcp or dhcpv6" if dhcp else "")
        out = []
        for node in nodes:
            if _arg(node) in ("dhcp", "dhcpv6"):
                if dhcp:
                    self.not_applied(f"{path} address {_arg(node)} (DHCP is not emulated)")
                else:
                    self.problem(node, f"{path} address", f"invalid value '{_arg(node)}': only ethernet "
                                 f"interfaces take dhcp or dhcpv6", f"VyOS accepts {accepts}")
                continue
            addr = self.value(node, f"{path} address", host_address, f"VyOS accepts {accepts}")
            if isinstance(addr, IPv4Interface):
                out.append(At(addr, node.line, f"{path} address"))
            elif addr is not None:
                self.not_applied(f"{path} address {addr} (IPv6 is not emulated)")
        return tuple(out)

    def mtu(self, node: CNode | None, path: str, bounds: tuple[int, int]) -> At[int] | None:
        if node is None:
            return None
        mtu = self.value(node, f"{path} mtu", integer_in(bounds),
                         f"{self.release.label} accepts {bounds[0]}..{bounds[1]}")
        return At(mtu, node.line, f"{path} mtu") if mtu is not None else None


def decode(data: bytes, file: str) -> str:
    """config.boot as text; a binary or non-UTF-8 file is an error naming the first offending byte."""
    data = data.removeprefix(b"\xef\xbb\xbf")   # a byte-order mark some editors add
    try:
        text, undecodable = data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        text, undecodable = data[:exc.start].decode("utf-8"), exc.start
    m = _NOT_TEXT.search(text)          # a control character before any undecodable byte comes first
    if m is not None:
        bad, why = len(text[:m.start()].encode("utf-8")), "is a control character"
    elif undecodable is not None:
        bad, why = undecodable, "is not UTF-8"
    else:
        return text
    raise ClabgenError(Problem(Where(file, data.count(b"\n", 0, bad) + 1),
                               f"not a text config.boot: byte 0x{data[bad]:02x} at offset {bad} {why}"))


def load(path: Path) -> DeviceConfig:
    """Read, decode, parse and check one config.boot; raises once with every problem in it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClabgenError(Problem(Where(str(path)), f"cannot read the config: {exc.strerror or exc}")) from None
    return parse(decode(data, str(path)), str(path))


class Gateway(Protocol):
    """A lab node as the runtimes know it (labdir.LabNode): a gateway is a node with a config.boot."""

    @property
    def name(self) -> str: ...
    @property
    def config(self) -> Path | None: ...


def load_gateways(nodes: Iterable[Gateway]) -> dict[str, DeviceConfig]:
    """Every gateway's config, checked before a deploy creates anything; one error lists all files' problems."""
    configs: dict[str, DeviceConfig] = {}
    problems: list[Problem] = []
    for node in nodes:
        if node.config is None:
            continue
        try:
            configs[node.name] = load(node.config)
        except ClabgenError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ClabgenError(*problems)
    return configs


def parse(text: str, file: str = "config.boot") -> DeviceConfig:
    """The emulated subset of a config.boot; raises ClabgenError with every invalid value in it."""
    tree = parse_boot(text, file, allow_hash_comments=True)
    from . import vyos_routing  # it reads with this module's _Reader
    r = _Reader(file, release_of(text))
    routing: list[CNode] = []
    # Interfaces first: a static route may name an interface configured further down.
    for top in sorted(tree.children, key=lambda n: n.name != "interfaces"):
        if top.name == "interfaces":
            _interfaces(r, top)
        elif top.name == "protocols":
            routing.extend(_protocols(r, top))
        elif top.name == "vpn":
            from . import vyos_crypto
            r.cfg.ipsec = vyos_crypto.read_vpn(r, top)
        else:
            r.not_applied(_named(top))
    r.cfg.routing = vyos_routing.read(r, routing, r.ip_ospf, _configured(r))
    _distinct_tunnels(r)
    r.problems.items.sort(key=lambda p: p.where.line if p.where else 0)    # in file order
    r.problems.raise_if_any()
    return r.cfg


def _interfaces(r: _Reader, top: CNode) -> None:
    names = {"ethernet": (r.release.ethernet_names, r.release.ethernet_shown), "loopback": ("lo", "lo"),
             "tunnel": (r"tun[0-9]+", "tunN"), "wireguard": (r"wg[0-9]+", "wgN")}
    for node in top.children:
        if node.name not in names:
            r.not_applied(f"interfaces {_named(node)}")
            continue
        pattern, shown = names[node.name]
        ifname = r.value(node, f"interfaces {node.name}", functools.partial(_ifname, pattern=pattern, shown=shown))
        if ifname is None:
            continue
        path = f"interfaces {node.name} {ifname}"
        if node.name == "tunnel":
            _tunnel(r, node, ifname, path)
            continue
        if node.name == "wireguard":
            from . import vyos_crypto
            wg = vyos_crypto.read_wireguard(r, node, ifname, path, functools.partial(_ip, r, ifname=ifname, path=path))
            if wg is not None:
                r.cfg.wireguard.append(wg)
            continue
        ethernet = node.name == "ethernet"
        applied = {"address", "mtu", "disable", "ip"} if ethernet else {"address"}
        for c in node.children:
            if c.name not in applied and c.name not in INERT:
                r.not_applied(f"{path} {_named(c)}")
            elif c.name == "disable":
                r.valueless(c, path)
            elif c.name == "ip":
                _ip(r, c, ifname, path)
        mtu = r.mtu(_first(node, "mtu"), path, r.release.ethernet_mtu) if ethernet else None
        addresses = r.addresses(node.find("address"), path, dhcp=ethernet)
        disabled = ethernet and bool(node.find("disable"))
        r.cfg.interfaces.append(Interface(ifname, path, addresses, mtu, disabled, node.line))


def _ifname(value: str, pattern: str, shown: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"not an interface name VyOS accepts here ({shown})")
    return value


def _first(node: CNode, name: str) -> CNode | None:
    found = node.find(name)
    return found[0] if found else None


def _tunnel(r: _Reader, node: CNode, ifname: str, path: str) -> None:
    """Checks every tunnel leaf; creates the tunnel only if it is valid, emulated and complete."""
    before = len(r.problems.items)
    leaves = {"address", "mtu", "encapsulation", "local-ip", "source-address", "remote-ip", "remote"}
    ttl = None
    for c in node.children:
        if c.name == "ip":
            _ip(r, c, ifname, path)
        elif c.name == "parameters":
            ttl = _tunnel_parameters(r, c, path)
        elif c.name not in leaves and c.name not in INERT:
            r.not_applied(f"{path} {_named(c)}")
    rel = r.release
    mtu = r.mtu(_first(node, "mtu"), path, rel.tunnel_mtu)
    addresses = r.addresses(node.find("address"), path, dhcp=False)
    encap_node = _first(node, "encapsulation")
    mode = None
    if encap_node is None:
        r.problem(node, path, "no encapsulation: VyOS refuses to commit a tunnel without one",
                  f"{rel.label} accepts {', '.join(rel.encapsulations)}")
    else:
        mode = r.value(encap_node, f"{path} encapsulation", lambda v: _encapsulation(v, rel),
                       f"{rel.label} accepts {', '.join(rel.encapsulations)}")
    family = 6 if mode in IPV6_UNDERLAY else 4
    ends: dict[str, At[str] | None] = {}
    for role, names in (("local", ("local-ip", "source-address")), ("remote", ("remote-ip", "remote"))):
        end = next((c for c in node.children if c.name in names), None)
        if end is not None:
            ip = r.value(end, f"{path} {end.name}", lambda v: _endpoint(v, mode, family))
            ends[role] = At(ip, end.line, f"{path} {end.name}") if ip is not None else None
    if "local" not in ends:
        if node.find("source-interface"):
            r.not_applied(f"{path} (a local address taken from source-interface is not emulated)")
        else:
            r.problem(node, path, f"no {rel.local_leaf}: VyOS refuses to commit a tunnel without its local address")
    if "remote" not in ends:
        if mode == "gre":
            r.not_applied(f"{path} (gre without {rel.remote_leaf}, a multipoint tunnel, is not emulated)")
        elif mode is not None:
            r.problem(node, path, f"no {rel.remote_leaf}: VyOS refuses to commit a tunnel without its remote "
                                  f"address (only gre may omit it)")
    if mode is not None and mode not in EMULATED_ENCAPSULATIONS:
        r.not_applied(f"{path} (encapsulation {mode} is not emulated; emulated: {', '.join(EMULATED_ENCAPSULATIONS)})")
    local, remote = ends.get("local"), ends.get("remote")
    if len(r.problems.items) == before and mode in EMULATED_ENCAPSULATIONS and local and remote:
        r.cfg.tunnels.append(Tunnel(ifname, path, mode, local, remote, addresses, mtu, node.line, ttl))


def _ip(r: _Reader, node: CNode, ifname: str, path: str) -> None:
    from . import vyos_routing
    r.ip_ospf.extend(vyos_routing.read_ip(r, node, ifname, path))


def _tunnel_parameters(r: _Reader, node: CNode, path: str) -> At[int] | None:
    """`parameters ip ttl N` (0..255 in every release; 0 is the kernel's inherit); the rest is not applied."""
    ttl = None
    for c in node.children:
        if c.name != "ip":
            r.not_applied(f"{path} parameters {_named(c)}")
            continue
        for leaf in c.children:
            if leaf.name != "ttl":
                r.not_applied(f"{path} parameters ip {_named(leaf)}")
                continue
            value = r.value(leaf, f"{path} parameters ip ttl", integer_in((0, 255)), f"{r.release.label} accepts 0..255")
            ttl = At(value, leaf.line, f"{path} parameters ip ttl") if value is not None else None
    return ttl


def _configured(r: _Reader) -> set[str]:
    return {i.ifname for i in r.cfg.interfaces} | {t.ifname for t in r.cfg.tunnels} | {w.ifname for w in r.cfg.wireguard}


def _distinct_tunnels(r: _Reader) -> None:
    """Two tunnels with one encapsulation and the same endpoints: the kernel (and the userspace
    dataplane) cannot tell their packets apart and refuse the second; VyOS refuses it for gre."""
    seen: dict[tuple[str, str, str], Tunnel] = {}
    for t in r.cfg.tunnels:
        first = seen.setdefault((t.mode, t.local.value, t.remote.value), t)
        if first is not t:
            r.problems.add(r.cfg.where(t.line, t.path),
                           f"same encapsulation ({t.mode}), local and remote address as {first.path} "
                           f"(line {first.line}): the second tunnel cannot be told apart from the first")


def _encapsulation(value: str, release: Release) -> str:
    if value not in KNOWN_ENCAPSULATIONS:
        raise ValueError("not an encapsulation VyOS knows")
    if value not in release.encapsulations:
        raise ValueError(f"not available in {release.label}")
    return value


def _endpoint(value: str, mode: str | None, family: int) -> str:
    ip = _address(value)
    if mode is not None and ip.version != family:
        raise ValueError(f"encapsulation {mode} needs an IPv{family} address")
    return str(ip)


def _protocols(r: _Reader, top: CNode) -> list[CNode]:
    """Reads static routes; returns the ospf, bgp and bfd nodes (read once interfaces are known)."""
    routing = []
    for node in top.children:
        if node.name in ("ospf", "bgp", "bfd"):
            routing.append(node)
            continue
        if node.name != "static":
            r.not_applied(f"protocols {_named(node)}")
            continue
        for route in node.children:
            if route.name != "route":
                r.not_applied(f"protocols static {_named(route)}")
                continue
            prefix = r.value(route, "protocols static route", ipv4_prefix)
            if prefix is not None:
                _route(r, route, prefix)
    return routing


def _route(r: _Reader, route: CNode, prefix: IPv4Network) -> None:
    path = f"protocols static route {prefix}"
    configured = _configured(r)
    hops: list[At[IPv4Address]] = []
    devs: list[At[str]] = []
    for c in route.children:
        if c.name == "next-hop":
            hop = r.value(c, f"{path} next-hop", ipv4_address)
            if hop is not None:
                hops.append(At(hop, c.line, f"{path} next-hop"))
                _not_applied_below(r, c, f"{path} next-hop {hop}")
        elif c.name == "interface":
            dev = r.value(c, f"{path} interface", lambda v: _route_ifname(v, configured))
            if dev is not None:
                devs.append(At(dev, c.line, f"{path} interface"))
                _not_applied_below(r, c, f"{path} interface {dev}")
        elif c.name not in INERT:
            r.not_applied(f"{path} {_named(c)}")
    if hops or devs:
        r.cfg.routes.append(StaticRoute(prefix, path, tuple(hops), tuple(devs), route.line))
    elif not route.children:
        r.not_applied(f"{path} (no next-hop or interface: nothing to install)")


def _route_ifname(value: str, configured: set[str]) -> str:
    if not ROUTE_IFNAME.fullmatch(value) and value not in configured:
        raise ValueError("not an interface VyOS knows (none configured by that name)")
    return value


def _not_applied_below(r: _Reader, node: CNode, path: str) -> None:
    """A next-hop's own options (distance, disable, bfd, vrf ...) are not emulated: say so."""
    for c in node.children:
        r.not_applied(f"{path} {_named(c)}")


def tunnel_mtu(cfg: DeviceConfig, t: Tunnel, link_mtus: dict[str, int]) -> int:
    """The MTU the kernel would give this tunnel: configured, else underlay MTU - overhead."""
    if t.mtu:
        return t.mtu.value
    base = cfg.underlay_mtu(t.local.value, link_mtus) or 1500
    return base - TUNNEL_TYPES[t.mode].overhead
