"""Pure-Python forwarding loops: the fallback when the C fast path cannot be built.

One thread per direction; os.readv/os.write and socket calls release the GIL. Descriptors are
drained until EAGAIN and only then polled (together with the stop pipe), so a busy tunnel costs
one syscall per packet per side and an idle one costs nothing.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from dataclasses import dataclass, field

from . import wire
from .endpoint import Endpoint

_MAX = 65535
# What an ICMP error about an earlier packet leaves on a raw socket (the kernel's icmp_err_convert):
# e.g. protocol unreachable from a peer whose tunnel end is not up yet, which routing daemons'
# hellos hit when gateways boot one by one. The next recv works again; the kernel's own tunnel
# ignores these too, so the loop goes on instead of stopping the tunnel for good.
ICMP_REPORTED = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENOPROTOOPT, errno.ECONNREFUSED,
                           errno.EMSGSIZE, errno.EOPNOTSUPP, errno.EHOSTDOWN, errno.ENONET, errno.EPROTO})


@dataclass
class Counters:
    """Per direction: packets and bytes forwarded, packets dropped."""

    packets: int = 0
    bytes: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"packets": self.packets, "bytes": self.bytes, "dropped": self.dropped, "error": "; ".join(self.errors)}


def _wait(fd: int, stop_fd: int) -> bool:
    """Block until fd is readable; False once the stop pipe is."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(stop_fd, select.POLLIN)
    return all(ready != stop_fd for ready, _ in poller.poll())


def encap_loop(ep: Endpoint, stop_fd: int, counters: Counters) -> None:
    """TUN -> raw socket: read the inner packet right behind a prebuilt outer header, send both."""
    overhead = ep.spec.overhead
    buf = bytearray(overhead + _MAX)
    buf[:overhead] = wire.header_template(ep.spec.mode, ep.spec.local, ep.spec.remote, ep.spec.ttl)
    inherit = ep.spec.ttl == 0
    view = memoryview(buf)
    inner = [view[overhead:]]
    send, readv, tun = ep.sock.send, os.readv, ep.tun_fd
    ident = (os.getpid() ^ id(buf)) % 65535
    while True:
        try:
            n = readv(tun, inner)
        except BlockingIOError:
            if not _wait(tun, stop_fd):
                return
            continue
        except OSError as exc:  # link deleted under us
            counters.errors.append(f"tun read: {exc}")
            return
        if n < 20 or buf[overhead] >> 4 != 4:  # the kernel tunnels carry IPv4 only here
            counters.dropped += 1
            continue
        ident = ident % 65535 + 1  # never 0: the kernel would write 0 there under DF
        total = wire.fill_outer(buf, overhead, n, ident, inherit)
        try:
            send(view[:total])
        except OSError:  # EMSGSIZE, ENOBUFS, unreachable: the kernel would drop it too
            counters.dropped += 1
            continue
        counters.packets += 1
        counters.bytes += n


def decap_loop(ep: Endpoint, stop_fd: int, counters: Counters) -> None:
    """Raw socket -> TUN: check the outer header like the kernel tunnel, write the inner packet."""
    buf = bytearray(_MAX + 1)
    view = memoryview(buf)
    mode = ep.spec.mode
    remote = socket.inet_aton(ep.spec.remote)
    recv_into, write, tun = ep.sock.recv_into, os.write, ep.tun_fd
    sock_fd = ep.sock.fileno()
    dontwait = socket.MSG_DONTWAIT
    while True:
        try:
            n = recv_into(view, _MAX + 1, dontwait)
        except BlockingIOError:
            if not _wait(sock_fd, stop_fd):
                return
            continue
        except OSError as exc:
            if exc.errno in ICMP_REPORTED:
                continue
            counters.errors.append(f"raw recv: {exc}")
            return
        span = wire.decap(view[:n], mode, remote)
        if span is None:
            counters.dropped += 1
            continue
        start, end = span
        try:
            write(tun, view[start:end])
        except OSError:
            counters.dropped += 1
            continue
        counters.packets += 1
        counters.bytes += end - start
