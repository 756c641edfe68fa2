"""Pure-Python forwarding loops: the fallback when the C fast path cannot be built.

Same shape as the C loops (fastpath.c dp_serve): a thread serves its share of the lab's tunnel
ends, both directions, through one epoll set, one batch per ready descriptor per round, so the
number of threads does not grow with the tunnels. Buffers belong to the thread. os.readv/os.write
and socket calls release the GIL; an idle tunnel costs nothing (the thread sleeps in epoll).
"""

from __future__ import annotations

import errno
import os
import select
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import wire
from .endpoint import Endpoint

_MAX = 65535
BATCH = 64   # packets per descriptor per round: a busy tunnel cannot starve the others
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


@dataclass
class PyEnd:
    """One tunnel end as a Python thread serves it: its descriptors, header and counters."""

    ep: Endpoint
    encap: Counters = field(default_factory=Counters)
    decap: Counters = field(default_factory=Counters)
    ident: int = 0

    def __post_init__(self) -> None:
        spec = self.ep.spec
        self.template = wire.header_template(spec.mode, spec.local, spec.remote, spec.ttl)
        self.inherit = spec.ttl == 0
        self.remote = socket.inet_aton(spec.remote)
        self.ident = (os.getpid() ^ id(self)) % 65535


class _Buffers:
    """What one thread reuses for every end it serves (a batch is finished before the next fd)."""

    def __init__(self) -> None:
        self.out = bytearray(64 + _MAX)   # room for any outer header + the largest inner packet
        self.out_view = memoryview(self.out)
        self.inp = bytearray(_MAX + 1)
        self.in_view = memoryview(self.inp)


def encap_step(end: PyEnd, buf: _Buffers) -> int:
    """Up to BATCH packets TUN -> raw socket, read behind the outer header; 0 when the TUN had none.
    OSError when the TUN itself fails (link deleted under us)."""
    overhead = end.ep.spec.overhead
    out, view = buf.out, buf.out_view
    inner = [view[overhead:]]
    done = 0
    while done < BATCH:
        try:
            n = os.readv(end.ep.tun_fd, inner)
        except BlockingIOError:
            break
        done += 1
        if n < 20 or out[overhead] >> 4 != 4:  # the kernel tunnels carry IPv4 only here
            end.encap.dropped += 1
            continue
        out[:overhead] = end.template
        end.ident = end.ident % 65535 + 1  # never 0: the kernel would write 0 there under DF
        total = wire.fill_outer(out, overhead, n, end.ident, end.inherit)
        try:
            end.ep.sock.send(view[:total])
        except OSError:  # EMSGSIZE, ENOBUFS, unreachable: the kernel would drop it too
            end.encap.dropped += 1
            continue
        end.encap.packets += 1
        end.encap.bytes += n
    return done


def decap_step(end: PyEnd, buf: _Buffers) -> int:
    """Up to BATCH packets raw socket -> TUN, checked like the kernel tunnel; 0 when none waited."""
    view, mode = buf.in_view, end.ep.spec.mode
    done = 0
    while done < BATCH:
        try:
            n = end.ep.sock.recv_into(view, _MAX + 1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno in ICMP_REPORTED:
                continue
            raise
        done += 1
        span = wire.decap(view[:n], mode, end.remote)
        if span is None:
            end.decap.dropped += 1
            continue
        start, stop = span
        try:
            os.write(end.ep.tun_fd, view[start:stop])
        except OSError:
            end.decap.dropped += 1
            continue
        end.decap.packets += 1
        end.decap.bytes += stop - start
    return done


def serve(ends: Sequence[PyEnd], stop_fd: int) -> None:
    """Forward for these ends until the stop pipe is readable or a descriptor fails (recorded in
    that end's counters; the process supervising the thread then stops the lab's dataplane)."""
    buf = _Buffers()
    poller = select.epoll()
    try:
        where: dict[int, tuple[PyEnd, bool]] = {}
        for end in ends:
            where[end.ep.tun_fd] = (end, True)
            where[end.ep.sock.fileno()] = (end, False)
        for fd in where:
            poller.register(fd, select.EPOLLIN)
        poller.register(stop_fd, select.EPOLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == stop_fd:
                    return
                end, outgoing = where[fd]
                try:
                    encap_step(end, buf) if outgoing else decap_step(end, buf)
                except OSError as exc:
                    counters = end.encap if outgoing else end.decap
                    counters.errors.append(f"{'tun read' if outgoing else 'raw recv'}: {exc}")
                    return
    finally:
        poller.close()
