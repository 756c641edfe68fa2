"""Put a parsed VyOS DeviceConfig into a namespace: links first, tunnels, then routes.

Each netlink call applies one config.boot leaf, so when the kernel refuses a value the error
names that leaf's FILE:LINE (a RuntimeFailure: the deploy rolls back) instead of a bare NetlinkError.
Routing is VyOS's: a config with protocols ospf, bgp or bfd gets FRR (frr.py, frrd.py) for all of
its routing, static routes included, as VyOS does; static routes alone are netlink calls, so a lab
without dynamic routing needs no FRR on the machine. Both install them as `proto static metric 20`.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError

from .. import netlink
from ..dataplane import BACKENDS, bpf, kernel_supports
from ..dataplane.nsenter import entered
from ..dataplane.spec import DataplaneError, parse_tunnel
from ..errors import Problem, RuntimeFailure
from . import RouteFacts, frr, frrd
from .vyos import DeviceConfig, Interface, Tunnel, load, tunnel_mtu
from .vyos_crypto import WgInterface

# Why the kernel usually says this, for the leaves applied here.
STATIC_WAIT = 5.0      # seconds FRR gets to put the static routes into the kernel
KERNEL_HINTS = {errno.ENETUNREACH: "no interface applied from this config has an address in the next-hop's subnet",
                errno.EEXIST: "something equivalent exists already (another tunnel with the same endpoints?)"}


@dataclass
class Applied:
    interfaces: int = 0
    kernel_tunnels: list[str] = field(default_factory=list)
    bpf_tunnels: list[dict[str, str]] = field(default_factory=list)   # {"ifname", "mode"}
    userspace: list[dict[str, Any]] = field(default_factory=list)   # dataplane spec entries
    routes: int = 0
    warnings: list[str] = field(default_factory=list)
    frr: dict[str, int] = field(default_factory=dict)      # FRR daemon -> pid, when the config has routing
    frr_sockets: str | None = None                          # their vty sockets (vtysh --vty_socket)
    crypto: Any = None                                      # emu.crypto.CryptoApplied: WireGuard, IPsec


class Located(Protocol):
    """Something read from config.boot: a leaf's value (vyos.At) or a whole interface, tunnel or route."""

    @property
    def line(self) -> int: ...
    @property
    def path(self) -> str: ...


@contextmanager
def applying(cfg: DeviceConfig, what: Located, action: str) -> Iterator[None]:
    """Turn a refusal while applying one leaf into FILE:LINE: path: action: reason."""
    try:
        yield
    except NetlinkError as exc:
        code = abs(exc.code) if isinstance(exc.code, int) else 0
        reason = os.strerror(code) if code else str(exc)
        raise RuntimeFailure(Problem(cfg.where(what.line, what.path), f"{action}: the kernel refused it: {reason}",
                                     KERNEL_HINTS.get(code, ""))) from exc
    except (LookupError, DataplaneError, bpf.BpfSetupError, bpf.BuildError, bpf.LibbpfError) as exc:
        # no such interface; a tunnel userspace cannot run; a BPF tunnel the machine cannot make
        raise RuntimeFailure(Problem(cfg.where(what.line, what.path), f"{action}: {exc}")) from exc


def choose_backend(mode: str, want: str, *, protected: bool = False) -> str:
    """`auto`: the kernel's tunnel when this kernel has it, else the BPF tunnel when this machine
    runs it (BPF syscall, cls_bpf, libbpf, clang or the host's compiled program), else the userspace
    dataplane. A backend asked for by name that cannot run here fails with the reason.
    protected: IPsec protects the tunnel's outer packets; the BPF tunnel hands them straight to
    the underlay, past the route into userspace ESP, so it never carries such a tunnel."""
    if want not in BACKENDS:
        raise DataplaneError(f"unknown tunnel backend {want!r}; valid: {', '.join(BACKENDS)}")
    if want == "auto":
        if kernel_supports(mode):
            return "kernel"
        return "bpf" if not protected and bpf.unavailable(mode) is None else "userspace"
    if want == "bpf" and protected:
        raise DataplaneError("the BPF tunnel cannot carry a tunnel IPsec protects (its packets would skip ESP); "
                             "use --tunnels auto or userspace")
    if want == "bpf" and (why := bpf.unavailable(mode)):
        raise DataplaneError(f"the BPF tunnel cannot run here: {why}")
    return want


def _protected(cfg: DeviceConfig, t: Tunnel) -> bool:
    """Whether an IPsec peer of this config runs between the tunnel's endpoints."""
    if cfg.ipsec is None:
        return False
    ends = {str(t.local.value), str(t.remote.value)}
    return any({p.local, p.remote} == ends for p in cfg.ipsec.peers)


def configure(ns: str | None, cfg: DeviceConfig, link: Interface | Tunnel | WgInterface, *, up: bool = True) -> None:
    """MTU, then each address, one call per leaf; bringing the link up rides on the last call."""
    steps: list[tuple[Located, str, dict[str, Any]]] = []
    if link.mtu:
        steps.append((link.mtu, f"setting MTU {link.mtu.value} on {link.ifname}", {"mtu": link.mtu.value}))
    for a in link.addresses:
        steps.append((a, f"adding {a.value} to {link.ifname}", {"addresses": [a.value]}))
    if not steps and up:
        steps.append((link, f"bringing {link.ifname} up", {}))
    for n, (what, action, kw) in enumerate(steps):
        with applying(cfg, what, action):
            netlink.configure(ns, link.ifname, up=up and n == len(steps) - 1, **kw)


def apply_links(ns: str | None, cfg: DeviceConfig, *, tunnels: str = "auto", spec_netns: str | None = None,
                run_dir: Path | None = None, files: Mapping[str, Path] | None = None) -> Applied:
    """Addresses, MTUs and tunnels; returns the tunnels the userspace dataplane must create.
    run_dir: the node's own directory for encrypted tunnels' daemons (emu.crypto), None in a
    container; files: container paths -> host paths (the node's binds)."""
    out = Applied()
    netlink.sysctl(ns, "net.ipv4.ip_forward", "1")
    present = {link.ifname: link.mtu for link in netlink.links(ns)}
    # What the userspace tunnel can bind: the addresses this config puts on links that exist.
    local_ips = {a.value.ip for i in cfg.interfaces if i.ifname in present for a in i.addresses} | \
                {a.value.ip for t in cfg.tunnels for a in t.addresses}
    for i in cfg.interfaces:
        if i.ifname not in present:
            out.warnings.append(f"interface {i.ifname} is configured but not connected in the topology")
            continue
        configure(ns, cfg, i, up=not i.disabled)
        if i.mtu:
            present[i.ifname] = i.mtu.value
        out.interfaces += 1
    bpf_ends: list[tuple[Tunnel, bpf.BpfTunnel]] = []
    for t in cfg.tunnels:
        mtu = tunnel_mtu(cfg, t, present)
        with applying(cfg, t, f"{t.mode} tunnel {t.ifname}"):
            backend = choose_backend(t.mode, tunnels, protected=_protected(cfg, t))
        if backend == "bpf":
            end = bpf.BpfTunnel(t.ifname, t.mode, str(t.local.value), str(t.remote.value), mtu,
                                t.ttl.value if t.ttl else 0)
            with applying(cfg, t, f"creating BPF {t.mode} tunnel {t.ifname} local {t.local.value} remote "
                                  f"{t.remote.value}"), entered(ns):
                bpf.create_device(end)
            configure(ns, cfg, t)
            bpf_ends.append((t, end))
            out.bpf_tunnels.append({"ifname": t.ifname, "mode": t.mode})
            continue
        if backend == "kernel":
            with applying(cfg, t.ttl or t, f"creating {t.mode} tunnel {t.ifname} local {t.local.value} remote "
                                           f"{t.remote.value}" + (f" ttl {t.ttl.value}" if t.ttl else "")):
                netlink.kernel_tunnel(ns, t.ifname, t.mode, t.local.value, t.remote.value, None,
                                      ttl=t.ttl.value if t.ttl else 0)
            configure(ns, cfg, t)
            out.kernel_tunnels.append(t.ifname)
            continue
        if len(t.addresses) > 1:
            out.warnings.append(f"tunnel {t.ifname}: only the first address is emulated")
        out.userspace.append(userspace_tunnel(cfg, t, mtu, spec_netns, local_ips))
    if bpf_ends:
        attach_bpf(ns, cfg, bpf_ends)
    if cfg.wireguard or cfg.ipsec is not None:
        _start_crypto(ns, cfg, out, tunnels, run_dir, files, present)
    out.warnings.extend(f"not applied (outside the emulated dataplane): {p}" for p in cfg.ignored)
    out.warnings.extend(cfg.notes)
    return out


def attach_bpf(ns: str | None, cfg: DeviceConfig, ends: list[tuple[Tunnel, bpf.BpfTunnel]]) -> None:
    """One program load for the namespace, once all of its BPF tunnel devices exist and are configured."""
    first = ends[0][0]
    with applying(cfg, first, f"attaching the BPF tunnel programs ({', '.join(t.ifname for t, _ in ends)})"):
        program = bpf.object_bytes()
        with entered(ns):
            bpf.attach([end for _, end in ends], program)


def _start_crypto(ns: str | None, cfg: DeviceConfig, out: Applied, tunnels: str, run_dir: Path | None,
                  files: Mapping[str, Path] | None, present: dict[str, int]) -> None:
    """WireGuard interfaces and IPsec (emu.crypto): daemons where the kernel has neither."""
    from . import crypto
    done = crypto.start(ns, cfg, run_dir, backend=tunnels, files=files,
                        configure=lambda wg: configure(ns, cfg, wg))
    out.crypto = done


def userspace_tunnel(cfg: DeviceConfig, t: Tunnel, mtu: int, spec_netns: str | None,
                     local_ips: set[IPv4Address]) -> dict[str, Any]:
    """The dataplane spec entry for a tunnel, checked now, so what the userspace tunnel cannot run
    names its line here instead of failing later in the dataplane process."""
    entry = {"netns": spec_netns, "ifname": t.ifname, "mode": t.mode, "local": t.local.value,
             "remote": t.remote.value, "address": str(t.addresses[0].value) if t.addresses else None, "mtu": mtu,
             "ttl": t.ttl.value if t.ttl else 0}
    with applying(cfg, t, f"userspace {t.mode} tunnel {t.ifname}"):
        parse_tunnel(entry, t.ifname)
    if IPv4Address(t.local.value) not in local_ips:    # its raw socket binds the local address
        raise RuntimeFailure(Problem(cfg.where(t.local.line, t.local.path),
                                     f"userspace {t.mode} tunnel {t.ifname}: no interface of this gateway has "
                                     f"{t.local.value}, so the tunnel cannot send from it",
                                     f"the kernel's {t.mode} tunnel would accept it but carry nothing"))
    return entry


def apply_routes(ns: str | None, cfg: DeviceConfig, out: Applied, facts: RouteFacts,
                 run_dir: Path | None = None) -> None:
    """Routing once every tunnel exists: FRR when the config has protocols ospf, bgp or bfd (run_dir:
    the node's FRR directory, see frrd.FrrDirs), else its static routes with netlink."""
    if cfg.routing.uses_frr:
        start_frr(ns, cfg, out, run_dir)
    else:
        static_routes(ns, cfg, out, facts)


def start_frr(ns: str | None, cfg: DeviceConfig, out: Applied, run_dir: Path | None) -> None:
    """The daemons the config needs, then a bounded wait until staticd's routes are in the kernel
    (what the netlink path guarantees when it returns), so a verify right after deploy sees them."""
    dirs = frrd.FrrDirs(run_dir)
    line, path = cfg.routing.where
    try:
        out.frr = frrd.start(ns, dirs, frr.render(cfg), cfg.routing.daemons)
    except (frrd.FrrError, OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeFailure(Problem(cfg.where(line, path), f"starting FRR ({', '.join(cfg.routing.daemons)}): {exc}",
                                     "FRR comes from Debian's frr package (apt-get install --no-install-recommends "
                                     "frr)")) from exc
    out.frr_sockets = str(dirs.sockets)
    out.routes = len(cfg.routes)
    # Only routes FRR can install at once: through an interface or a next-hop on one of this config's
    # subnets (one resolved through OSPF or BGP comes when they converge, and is not waited for).
    addresses = [a for i in cfg.interfaces for a in i.addresses] + [a for t in cfg.tunnels for a in t.addresses]
    subnets = [a.value.network for a in addresses]
    wanted = {str(r.prefix) for r in cfg.routes
              if r.interfaces or any(h.value in net for h in r.next_hops for net in subnets)}
    deadline = time.monotonic() + STATIC_WAIT
    while wanted:
        wanted -= {r.dst if r.dst != "default" else "0.0.0.0/0" for r in netlink.routes(ns)}
        if not wanted or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    out.warnings.extend(f"FRR has not installed static route {p} (is its next-hop reachable?)" for p in sorted(wanted))


def static_routes(ns: str | None, cfg: DeviceConfig, out: Applied, facts: RouteFacts) -> None:
    """Static routes with netlink, as the platform installs them (VyOS: FRR's staticd, proto static,
    metric 20: the platform's facts say so)."""
    for r in cfg.routes:
        if r.next_hops:
            hop = r.next_hops[0]
            with applying(cfg, hop, f"adding route {r.prefix} via {hop.value}"):
                netlink.add_route(ns, str(r.prefix), via=str(hop.value), proto=facts.proto, metric=facts.metric)
        else:
            dev = r.interfaces[0]
            with applying(cfg, dev, f"adding route {r.prefix} dev {dev.value}"):
                netlink.add_route(ns, str(r.prefix), via=None, dev=dev.value, proto=facts.proto,
                                  metric=facts.metric)
        gateways = len(r.next_hops) + len(r.interfaces)
        if gateways > 1:
            out.warnings.append(f"route {r.prefix}: only the first of its {gateways} next-hops/interfaces is emulated")
        out.routes += 1


class VyosEmulator:
    """VyOS config.boot: interfaces, ipip/gre tunnels, static routes and, through FRR, OSPF, BGP and
    BFD (clabgen.emu registry entry)."""

    name = "vyos"

    def load(self, path: Path) -> DeviceConfig:
        return load(path)

    def apply_links(self, ns: str | None, cfg: DeviceConfig, *, tunnels: str = "auto",
                    spec_netns: str | None = None, run_dir: Path | None = None,
                    files: Mapping[str, Path] | None = None) -> Applied:
        return apply_links(ns, cfg, tunnels=tunnels, spec_netns=spec_netns, run_dir=run_dir, files=files)

    def apply_routes(self, ns: str | None, cfg: DeviceConfig, applied: Applied, facts: RouteFacts,
                     run_dir: Path | None) -> None:
        apply_routes(ns, cfg, applied, facts, run_dir)

    def host_problems(self, cfg: DeviceConfig) -> list[str]:
        from . import crypto
        return frrd.missing(cfg.routing.daemons) + crypto.missing(cfg)
