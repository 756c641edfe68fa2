"""Run one tunnel's two directions on threads, with the C loops or the Python ones."""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..tunnels import tunnel_type
from . import pyloop, wire
from .endpoint import Endpoint
from .fastpath import CCounters

IMPLS = ("auto", "c", "python")


@dataclass
class Worker:
    """One direction of one tunnel; stats() may be read while it runs."""

    name: str
    thread: threading.Thread
    stats: Callable[[], dict[str, Any]]


class StopSignal:
    """What the loops watch: a flag read per batch and a pipe that wakes idle pollers."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.flag = ctypes.c_int(0)

    def set(self) -> None:
        self.flag.value = 1
        try:
            os.write(self.write_fd, b"x")  # never read back: stays readable for every poller
        except OSError:
            pass


def _where(ep: Endpoint) -> str:
    return f"{ep.spec.netns or '-'}/{ep.spec.ifname}"


def _c_workers(lib: ctypes.CDLL, ep: Endpoint, stop: StopSignal, cpu: int | None) -> list[Worker]:
    """One thread for both directions (dp_run polls both fds); a Worker per direction for the stats."""
    spec, raw = ep.spec, ep.sock.fileno()
    tmpl = wire.header_template(spec.mode, spec.local, spec.remote, spec.ttl)   # TTL 0: inherit
    remote = socket.inet_aton(spec.remote)
    c_format = tunnel_type(spec.mode).c_format
    enc, dec = CCounters(), CCounters()

    def call() -> None:
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})  # 0: this thread
            except OSError:
                pass
        lib.dp_run(ep.tun_fd, raw, tmpl, spec.overhead, c_format, remote, int(ep.vnet_hdr),
                   stop.read_fd, ctypes.byref(stop.flag), ctypes.byref(enc), ctypes.byref(dec))

    thread = threading.Thread(target=call, name=f"{spec.ifname}-fwd", daemon=True)
    return [Worker(f"{_where(ep)}-{name}", thread, counters.as_dict) for name, counters in (("encap", enc), ("decap", dec))]


def _py_workers(ep: Endpoint, stop: StopSignal) -> list[Worker]:
    workers = []
    for name, loop in (("encap", pyloop.encap_loop), ("decap", pyloop.decap_loop)):
        counters = pyloop.Counters()
        thread = threading.Thread(target=loop, args=(ep, stop.read_fd, counters),
                                  name=f"{ep.spec.ifname}-{name}", daemon=True)
        workers.append(Worker(f"{_where(ep)}-{name}", thread, counters.as_dict))
    return workers


def make_workers(ep: Endpoint, lib: ctypes.CDLL | None, stop: StopSignal, cpu: int | None = None) -> list[Worker]:
    """Workers for both directions; lib None means the Python loops (which want no vnet header).

    cpu pins the C thread: see pick_cpus.
    """
    if lib is None:
        assert not ep.vnet_hdr, "the Python loops read bare IP packets"
        return _py_workers(ep, stop)
    return _c_workers(lib, ep, stop, cpu)


def pick_cpus(count: int) -> list[int | None]:
    """A CPU for each of count tunnel-end threads, round robin over the ones we may use.

    The two ends of a tunnel hand every packet to each other through the kernel, so the
    scheduler's wake-affine logic keeps pulling them onto one CPU, leaving the other to the
    applications; spread over the CPUs they run in parallel (bench: ~10% more throughput on 2
    CPUs). Nothing is pinned on a single CPU or with CLABGEN_DATAPLANE_PIN=0.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or os.environ.get("CLABGEN_DATAPLANE_PIN", "1") == "0":
        return [None] * count
    return [cpus[i % len(cpus)] for i in range(count)]
