"""Apply the dataplane subset of a VyOS config.boot to a Linux network namespace.

"VyOS dataplane emulated": interface addresses and MTU, loopback, ipip/gre tunnels and static
routes become netlink calls; everything else in the config is listed, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from ..tunnels import TUNNEL_TYPES
from ..vyos_config import CNode, parse_boot

STATIC_METRIC = 20      # FRR installs static routes with metric 20 (the seed's `ip r s`)
# Leaves that change nothing in a namespace's dataplane (link negotiation, IRQ placement, text).
INERT = {"duplex", "speed", "smp-affinity", "description", "hw-id", "multicast"}


@dataclass(frozen=True)
class Tunnel:
    ifname: str
    mode: str
    local: str
    remote: str
    addresses: tuple[IPv4Interface, ...]
    mtu: int | None


@dataclass(frozen=True)
class Interface:
    ifname: str
    addresses: tuple[IPv4Interface, ...]
    mtu: int | None
    disabled: bool = False


@dataclass(frozen=True)
class StaticRoute:
    prefix: IPv4Network
    next_hops: tuple[IPv4Address, ...]
    interfaces: tuple[str, ...] = ()


@dataclass
class DeviceConfig:
    interfaces: list[Interface] = field(default_factory=list)
    tunnels: list[Tunnel] = field(default_factory=list)
    routes: list[StaticRoute] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)   # config paths this emulation does not apply

    def underlay_mtu(self, local: str, link_mtus: dict[str, int]) -> int | None:
        """MTU of the interface whose subnet holds `local`: the kernel derives a tunnel's MTU from it."""
        for i in self.interfaces:
            for a in i.addresses:
                if IPv4Address(local) in a.network:
                    return i.mtu or link_mtus.get(i.ifname)
        return None


def _addresses(node: CNode, path: str, cfg: DeviceConfig) -> tuple[IPv4Interface, ...]:
    out = []
    for value in node.leaf_values("address"):
        try:
            out.append(IPv4Interface(value))
        except ValueError:
            cfg.ignored.append(f"{path} address {value} (not an IPv4 address/prefix: dhcp and IPv6 are not emulated)")
    return tuple(out)


def _known(node: CNode, path: str, allowed: set[str], cfg: DeviceConfig) -> None:
    for c in node.children:
        if c.name not in allowed and c.name not in INERT:
            cfg.ignored.append(f"{path} {c.name}" + (f" {c.tag}" if c.tag else ""))


def parse(text: str, file: str = "config.boot") -> DeviceConfig:
    tree = parse_boot(text, file, allow_hash_comments=True)
    cfg = DeviceConfig()
    for top in tree.children:
        if top.name == "interfaces":
            _interfaces(top, cfg)
        elif top.name == "protocols":
            _protocols(top, cfg)
        else:
            cfg.ignored.append(top.name + (f" {top.tag}" if top.tag else ""))
    return cfg


def _interfaces(top: CNode, cfg: DeviceConfig) -> None:
    for node in top.children:
        path = f"interfaces {node.name} {node.tag}"
        if node.name in ("ethernet", "loopback"):
            _known(node, path, {"address", "mtu", "disable"}, cfg)
            mtu = node.leaf_value("mtu")
            cfg.interfaces.append(Interface(node.tag or "", _addresses(node, path, cfg),
                                            int(mtu) if mtu else None, node.has_leaf("disable")))
        elif node.name == "tunnel":
            _known(node, path, {"address", "mtu", "encapsulation", "local-ip", "remote-ip",
                                "source-address", "remote"}, cfg)
            mode = node.leaf_value("encapsulation") or ""
            local = node.leaf_value("local-ip") or node.leaf_value("source-address")
            remote = node.leaf_value("remote-ip") or node.leaf_value("remote")
            if mode not in TUNNEL_TYPES or not local or not remote:
                cfg.ignored.append(f"{path} (encapsulation {mode or '?'} with local {local} remote {remote} "
                                   f"is not emulated; supported: {', '.join(TUNNEL_TYPES)})")
                continue
            mtu = node.leaf_value("mtu")
            cfg.tunnels.append(Tunnel(node.tag or "", mode, local, remote, _addresses(node, path, cfg),
                                      int(mtu) if mtu else None))
        else:
            cfg.ignored.append(path)


def _protocols(top: CNode, cfg: DeviceConfig) -> None:
    for node in top.children:
        if node.name != "static":
            cfg.ignored.append(f"protocols {node.name}")
            continue
        for route in node.children:
            path = f"protocols static {route.name} {route.tag}"
            if route.name != "route":
                cfg.ignored.append(path)
                continue
            _known(route, path, {"next-hop", "interface"}, cfg)
            hops = tuple(IPv4Address(h.tag) for h in route.children if h.name == "next-hop" and h.tag)
            ifs = tuple(h.tag for h in route.children if h.name == "interface" and h.tag)
            cfg.routes.append(StaticRoute(IPv4Network(route.tag or ""), hops, ifs))


def tunnel_mtu(cfg: DeviceConfig, t: Tunnel, link_mtus: dict[str, int]) -> int:
    """The MTU the kernel would give this tunnel: configured, else underlay MTU - overhead."""
    if t.mtu:
        return t.mtu
    base = cfg.underlay_mtu(t.local, link_mtus) or 1500
    return base - TUNNEL_TYPES[t.mode].overhead
