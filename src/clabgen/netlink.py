"""Typed netlink operations on named namespaces (pyroute2), so no code builds `ip` command strings.

A netlink socket belongs to the namespace it is created in. pyroute2 creates one for another
namespace in a forked child process (16 ms each: a 50-site deploy forked 3 000 times); here the
calling thread enters the namespace (setns), opens the socket and comes back (under 1 ms). Inside
`session()` (a deploy, a verify) each namespace keeps one socket for every operation, instead of
one per call.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from .dataplane.nsenter import entered
from .iproute import route_text
from .rtnl import Rtnl
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


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET, _MS_BIND, _MS_SHARED, _MS_REC = 0x40000000, 4096, 1 << 20, 16384
_rundir_ready = threading.Lock()
_rundir_done = False


def _check(rc: int, what: str, name: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} for netns {name}: {os.strerror(err)}")


def _shared_rundir() -> None:
    """/run/netns as a shared mount, as `ip netns add` makes it (once per process)."""
    global _rundir_done
    with _rundir_ready:
        if _rundir_done:
            return
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        d = str(NETNS_DIR).encode()
        if _libc.mount(b"", d, b"none", _MS_SHARED | _MS_REC, None) != 0:
            _check(_libc.mount(d, d, b"none", _MS_BIND | _MS_REC, None), "bind-mounting /run/netns", "")
            _check(_libc.mount(b"", d, b"none", _MS_SHARED | _MS_REC, None), "sharing /run/netns", "")
        _rundir_done = True


def ns_create(name: str) -> None:
    """A named namespace with `lo` up, as `ip netns add` makes it, from this thread without a fork:
    the thread unshares its own namespace, bind-mounts it (/proc/thread-self: a thread's namespace is
    not the process's) and goes back home."""
    _shared_rundir()
    path = NETNS_DIR / name
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(_CLONE_NEWNET), "unshare", name)
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", str(path).encode(), b"none", _MS_BIND, None),
                   "bind mount", name)
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        finally:
            _check(_libc.setns(home, _CLONE_NEWNET), "going back home (setns)", name)
    except BaseException:
        _libc.umount2(str(path).encode(), 2)
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(home)


def ns_delete(name: str) -> bool:
    """Delete a named namespace (its veths go with it); False if it did not exist."""
    if _session is not None:
        _session.forget(name)
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


def open_socket(ns: str | None, loop: asyncio.AbstractEventLoop | None = None) -> IPRoute:
    """A netlink socket in ns (None: the caller's own namespace), opened from inside it; a namespace
    that does not exist is an error (never created). loop: the event loop pyroute2 runs it on (the
    caller closes it), else one pyroute2 makes and closes only from this thread."""
    if ns is None:
        return IPRoute(use_event_loop=loop)
    with entered(ns):
        return IPRoute(use_event_loop=loop)


def open_rtnl(ns: str | None) -> Rtnl:
    """The small rtnetlink client (rtnl.py) on a socket opened inside ns."""
    with entered(ns):
        return Rtnl()


class _Sockets:
    """A namespace's sockets: the small client's (any thread, one at a time) and pyroute2's, one
    per thread: a pyroute2 socket used from another thread than the one that opened it quietly
    opens a new one in that thread's namespace (the host's)."""

    def __init__(self, ns: str | None) -> None:
        self.ns = ns
        self.lock = threading.RLock()
        self._ipr: dict[threading.Thread, tuple[IPRoute, asyncio.AbstractEventLoop]] = {}
        self._rt: Rtnl | None = None

    @property
    def ipr(self) -> IPRoute:
        me = threading.current_thread()
        if me not in self._ipr:
            # Our own event loop, made out here: pyroute2 closes the one it makes only from the thread
            # that made it, and its socket pair, made inside the namespace, would keep the namespace
            # (and every BPF program in it) alive after the lab is destroyed.
            loop = asyncio.new_event_loop()
            self._ipr[me] = (open_socket(self.ns, loop), loop)
        return self._ipr[me][0]

    @property
    def rt(self) -> Rtnl:
        if self._rt is None:
            self._rt = open_rtnl(self.ns)
        return self._rt

    def close(self) -> None:
        for ipr, loop in self._ipr.values():
            ipr.close()
            loop.close()
        if self._rt is not None:
            self._rt.close()


class Session:
    """Open netlink sockets per namespace, each namespace's used by one thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str | None, _Sockets] = {}

    @contextmanager
    def use(self, ns: str | None) -> Iterator[_Sockets]:
        with self._lock:
            entry = self._open.get(ns)
            if entry is None:
                entry = self._open[ns] = _Sockets(ns)
        with entry.lock:
            yield entry

    def forget(self, ns: str | None) -> None:
        """Close ns's sockets (before the namespace goes away)."""
        with self._lock:
            entry = self._open.pop(ns, None)
        if entry is not None:
            entry.close()

    def close(self) -> None:
        with self._lock:
            entries, self._open = list(self._open.values()), {}
        for entry in entries:
            entry.close()


_session: Session | None = None


@contextmanager
def session() -> Iterator[Session]:
    """Keep one socket per namespace open for the block (nested: the outer session is used)."""
    global _session
    if _session is not None:
        yield _session
        return
    _session = Session()
    try:
        yield _session
    finally:
        current, _session = _session, None
        current.close()


@contextmanager
def _ipr(ns: str | None) -> Iterator[IPRoute]:
    if _session is not None:
        with _session.use(ns) as sockets:
            yield sockets.ipr
        return
    with open_socket(ns) as ipr:
        yield ipr


@contextmanager
def _rt(ns: str | None) -> Iterator[Rtnl]:
    if _session is not None:
        with _session.use(ns) as sockets:
            yield sockets.rt
        return
    rt = open_rtnl(ns)
    try:
        yield rt
    finally:
        rt.close()


def in_netns(ns: str | None, fn: Callable[[], T]) -> T:
    """Run fn inside namespace ns (name or path), then come back; sockets it opens stay there."""
    with entered(ns):
        return fn()


def veth(a_ns: str, a_if: str, b_ns: str, b_if: str, mtu: int) -> None:
    """One veth pair straight between two namespaces, both ends up: nothing appears in the host
    namespace (a request in each namespace)."""
    peer_fd = os.open(ns_path(b_ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _rt(a_ns) as rt:
            rt.add_veth(a_if, b_if, peer_fd, mtu)
    finally:
        os.close(peer_fd)
    with _rt(b_ns) as rt:
        rt.set_link(b_if, up=True)


def bridge(ns: str | None, ifname: str, up: bool = True) -> None:
    """A Linux bridge (`ip link add IF type bridge` leaves it down: up=False)."""
    with _rt(ns) as rt:
        rt.add_bridge(ifname, up=up)


def add_address(ns: str | None, ifname: str, address: IPv4Interface) -> None:
    """`ip addr add`: an address that is there already is refused (EEXIST), as `ip` refuses it."""
    with _rt(ns) as rt:
        net = address.network
        rt.add_address(ifname, str(address.ip), net.prefixlen, str(net.broadcast_address) if net.prefixlen < 31 else None)


def set_link(ns: str | None, ifname: str, *, up: bool | None = None, master: str | None = None) -> None:
    with _rt(ns) as rt:
        rt.set_link(ifname, up=up, master=master)


def link_index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname}")
    return int(found[0])


def configure(ns: str | None, ifname: str, *, addresses: list[IPv4Interface] = (), mtu: int | None = None,  # type: ignore[assignment]
              up: bool = True) -> None:
    with _rt(ns) as rt:
        if mtu is not None:
            rt.set_link(ifname, mtu=mtu)
        for a in addresses:
            try:
                rt.add_address(ifname, str(a.ip), a.network.prefixlen,
                               str(a.network.broadcast_address) if a.network.prefixlen < 31 else None)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
        if up:
            rt.set_link(ifname, up=True)


def add_route(ns: str | None, dst: str, *, via: str | None, dev: str | None = None, proto: str = "static",
              metric: int | None = None) -> None:
    """`ip route replace`: a route that exists is replaced, not refused."""
    with _rt(ns) as rt:
        rt.replace_route(dst, via=via, dev=dev, proto=PROTO_NUMBERS[proto], metric=metric)


def set_link_state(ns: str | None, ifname: str, up: bool) -> None:
    with _rt(ns) as rt:
        rt.set_link(ifname, up=up)


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
