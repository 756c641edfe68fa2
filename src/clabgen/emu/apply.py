"""Put a parsed VyOS DeviceConfig into a namespace: links first, tunnels, then routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import netlink
from ..dataplane import kernel_supports
from . import RouteFacts
from .vyos import DeviceConfig, parse, tunnel_mtu


@dataclass
class Applied:
    interfaces: int = 0
    kernel_tunnels: list[str] = field(default_factory=list)
    userspace: list[dict[str, Any]] = field(default_factory=list)   # dataplane spec entries
    routes: int = 0
    warnings: list[str] = field(default_factory=list)


def choose_backend(mode: str, want: str) -> str:
    """`auto` uses the kernel's tunnel when this kernel has it, else the userspace dataplane."""
    if want == "auto":
        return "kernel" if kernel_supports(mode) else "userspace"
    return want


def apply_links(ns: str | None, cfg: DeviceConfig, *, tunnels: str = "auto", spec_netns: str | None = None) -> Applied:
    """Addresses, MTUs and tunnels; returns the tunnels the userspace dataplane must create."""
    out = Applied()
    netlink.sysctl(ns, "net.ipv4.ip_forward", "1")
    present = {link.ifname: link.mtu for link in netlink.links(ns)}
    for i in cfg.interfaces:
        if i.ifname not in present:
            out.warnings.append(f"interface {i.ifname} is configured but not connected in the topology")
            continue
        netlink.configure(ns, i.ifname, addresses=list(i.addresses), mtu=i.mtu, up=not i.disabled)
        if i.mtu:
            present[i.ifname] = i.mtu
        out.interfaces += 1
    for t in cfg.tunnels:
        mtu = tunnel_mtu(cfg, t, present)
        if choose_backend(t.mode, tunnels) == "kernel":
            netlink.kernel_tunnel(ns, t.ifname, t.mode, t.local, t.remote, t.mtu)
            netlink.configure(ns, t.ifname, addresses=list(t.addresses))
            out.kernel_tunnels.append(t.ifname)
            continue
        if len(t.addresses) > 1:
            out.warnings.append(f"tunnel {t.ifname}: only the first address is emulated")
        out.userspace.append({"netns": spec_netns, "ifname": t.ifname, "mode": t.mode, "local": t.local,
                              "remote": t.remote, "address": str(t.addresses[0]) if t.addresses else None,
                              "mtu": mtu})
    out.warnings.extend(f"not applied (outside the emulated dataplane): {p}" for p in cfg.ignored)
    return out


def apply_routes(ns: str | None, cfg: DeviceConfig, out: Applied, facts: RouteFacts) -> None:
    """Static routes once every tunnel exists, as the platform installs them (VyOS: FRR's staticd,
    proto static, metric 20: the platform's facts say so)."""
    for r in cfg.routes:
        if not r.next_hops:
            dev = r.interfaces[0] if r.interfaces else None
            netlink.add_route(ns, str(r.prefix), via=None, dev=dev, proto=facts.proto, metric=facts.metric)
        else:
            netlink.add_route(ns, str(r.prefix), via=str(r.next_hops[0]), proto=facts.proto, metric=facts.metric)
            if len(r.next_hops) > 1:
                out.warnings.append(f"route {r.prefix}: only the first of {len(r.next_hops)} next-hops is emulated")
        out.routes += 1


class VyosEmulator:
    """VyOS config.boot: interfaces, ipip/gre tunnels and static routes (clabgen.emu registry entry)."""

    name = "vyos"

    def load(self, path: Path) -> DeviceConfig:
        return parse(path.read_text(encoding="utf-8"), str(path))

    def apply_links(self, ns: str | None, cfg: DeviceConfig, *, tunnels: str = "auto",
                    spec_netns: str | None = None) -> Applied:
        return apply_links(ns, cfg, tunnels=tunnels, spec_netns=spec_netns)

    def apply_routes(self, ns: str | None, cfg: DeviceConfig, applied: Applied, facts: RouteFacts) -> None:
        apply_routes(ns, cfg, applied, facts)
