"""Typed netlink operations on named namespaces (pyroute2), so no code builds `ip` command strings."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from .dataplane.nsenter import entered
from .iproute import route_text
from .tunnels import KERNEL_KINDS, tunnel_type

NETNS_DIR = Path("/run/netns")
PROTO_NAMES = {2: "kernel", 3: "boot", 4: "static", 186: "bgp", 188: "ospf", 196: "static"}
PROTO_NUMBERS = {"kernel": 2, "boot": 3, "static": 4}
SCOPE_NAMES = {0: "universe", 200: "site", 253: "link", 254: "host"}
T = TypeVar("T")


@dataclass(frozen=True)
class RouteInfo:
    dst: str
    dev: str
    via: str | None
    proto: str
    scope: str
    src: str | None
    metric: int | None
    nexthops: tuple[tuple[str, str], ...] = ()   # a multipath route's (via, dev) next hops

    def text(self) -> str:
        return route_text(self.dst, self.dev, self.via, self.proto, self.scope, self.src, self.metric, self.nexthops)

    def key(self) -> tuple[str, str, str | None, str, str, str | None, int | None, frozenset[tuple[str, str]]]:
        return (self.dst, self.dev, self.via, self.proto, self.scope, self.src, self.metric, frozenset(self.nexthops))


@dataclass(frozen=True)
class LinkInfo:
    ifname: str
    index: int
    kind: str | None
    mtu: int
    up: bool
    flags: int
    local: str | None = None      # a kernel tunnel's endpoints
    remote: str | None = None


def ns_path(ns: str) -> str:
    """A namespace is a name under /run/netns or an absolute path (e.g. /proc/PID/ns/net)."""
    return ns if ns.startswith("/") else str(NETNS_DIR / ns)


def ns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def ns_create(name: str) -> None:
    netns.create(name)
    with IPRoute(netns=name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def ns_delete(name: str) -> bool:
    """Delete a named namespace (its veths go with it); False if it did not exist."""
    if not ns_exists(name):
        return False
    try:
        netns.remove(name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    if (NETNS_DIR / name).exists():
        os.unlink(NETNS_DIR / name)
    return True


def ns_list() -> list[str]:
    return sorted(netns.listnetns())


def _ipr(ns: str | None) -> IPRoute:
    """ns None is the caller's own namespace (inside a container, say); flags=0: never create one."""
    if ns is None:
        return IPRoute()
    return IPRoute(netns=ns, flags=0)


def in_netns(ns: str | None, fn: Callable[[], T]) -> T:
    """Run fn inside namespace ns (name or path), then come back; sockets it opens stay there."""
    with entered(ns):
        return fn()


def veth(a_ns: str, a_if: str, b_ns: str, b_if: str, mtu: int) -> None:
    """One veth pair straight between two namespaces: nothing appears in the host namespace."""
    peer_fd = os.open(ns_path(b_ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _ipr(a_ns) as ipr:
            ipr.link("add", ifname=a_if, kind="veth", mtu=mtu, peer={"ifname": b_if, "net_ns_fd": peer_fd, "mtu": mtu})
            ipr.link("set", index=ipr.link_lookup(ifname=a_if)[0], state="up")
    finally:
        os.close(peer_fd)
    with _ipr(b_ns) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=b_if)[0], state="up")


def link_index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname}")
    return int(found[0])


def configure(ns: str | None, ifname: str, *, addresses: list[IPv4Interface] = (), mtu: int | None = None,  # type: ignore[assignment]
              up: bool = True) -> None:
    with _ipr(ns) as ipr:
        idx = link_index(ipr, ifname)
        if mtu is not None:
            ipr.link("set", index=idx, mtu=mtu)
        for a in addresses:
            try:
                ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen,
                         broadcast=str(a.network.broadcast_address) if a.network.prefixlen < 31 else None)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
        if up:
            ipr.link("set", index=idx, state="up")


def add_route(ns: str | None, dst: str, *, via: str | None, dev: str | None = None, proto: str = "static",
              metric: int | None = None) -> None:
    with _ipr(ns) as ipr:
        kw: dict[str, Any] = {"dst": dst, "proto": PROTO_NUMBERS[proto]}
        if dev:
            kw["oif"] = link_index(ipr, dev)
        if via:
            kw["gateway"] = via
        if metric is not None:
            kw["priority"] = metric
        ipr.route("replace", **kw)


def set_link_state(ns: str | None, ifname: str, up: bool) -> None:
    with _ipr(ns) as ipr:
        ipr.link("set", index=link_index(ipr, ifname), state="up" if up else "down")


def delete_route(ns: str | None, dst: str) -> None:
    with _ipr(ns) as ipr:
        ipr.route("del", dst=dst)


def routes(ns: str | None) -> list[RouteInfo]:
    """The main IPv4 table as `ip route show` lists it."""
    out = []
    with _ipr(ns) as ipr:
        names = {int(link["index"]): link.get("ifname") for link in ipr.link("dump")}
        for r in ipr.route("dump", family=2, table=254):
            if r["type"] != 1:   # unicast only, like `ip route show`
                continue
            dst = r.get("dst")
            dst_s = f"{dst}/{r['dst_len']}" if dst else "default"
            hops = tuple((str(h.get_attr("RTA_GATEWAY")), names.get(h["oif"], "?")) for h in r.get("multipath") or ())
            dev = "" if hops else names.get(r.get("oif"), "?")
            out.append(RouteInfo(dst_s, dev, r.get("gateway"),
                                 PROTO_NAMES.get(r["proto"], str(r["proto"])), SCOPE_NAMES.get(r["scope"], str(r["scope"])),
                                 r.get("prefsrc"), r.get("priority"), hops))
    return out


def links(ns: str | None) -> list[LinkInfo]:
    out = []
    with _ipr(ns) as ipr:
        for link in ipr.link("dump"):
            kind = link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
            info = link.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
            local = remote = None
            ttype = KERNEL_KINDS.get(kind)
            if ttype is not None and info is not None and hasattr(info, "get"):   # some data come back undecoded
                local, remote = ttype.link_endpoints(info)
            out.append(LinkInfo(link.get("ifname"), int(link["index"]), kind,
                                int(link.get("mtu")), link.get("state") == "up" or bool(link["flags"] & 1),
                                int(link["flags"]), local, remote))
    return out


def kernel_tunnel(ns: str | None, ifname: str, mode: str, local: str, remote: str, mtu: int | None,
                  ttl: int = 0) -> None:
    """The kernel's own tunnel device of type `mode`, as `ip tunnel add IF mode MODE local L remote R
    [ttl N]` makes it (the tunnel table says how; ttl 0 is the kernel's inherit)."""
    ttype = tunnel_type(mode)
    link = ttype.kernel_link(ifname, local, remote)
    if ttl:
        link[f"{ttype.netlink_prefix}_ttl"] = ttl
    with _ipr(ns) as ipr:
        ipr.link("add", **link)
        idx = link_index(ipr, ifname)
        if mtu is not None:
            ipr.link("set", index=idx, mtu=mtu)


def sysctl(ns: str | None, key: str, value: str) -> None:
    """Write a net.* sysctl inside ns (per-namespace), never the host's."""
    if not key.startswith("net."):
        raise ValueError("only per-namespace net.* sysctls")
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as fh:
            fh.write(value)

    in_netns(ns, write)


def wait_for_link(ns: str | None, ifname: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _ipr(ns) as ipr:
            if ipr.link_lookup(ifname=ifname):
                return True
        time.sleep(0.02)
    return False
