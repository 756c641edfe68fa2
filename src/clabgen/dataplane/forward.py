"""Run a lab's tunnel ends on a small pool of threads, with the C loops or the Python ones.

The pool has one thread per CPU we may use (never more threads than tunnel ends); each owns a
share of the ends, both directions, and waits on all of their descriptors at once (fastpath.c
dp_serve, pyloop.serve). A 50-site hub lab (101 tunnel ends) runs on as many threads as a
two-site one; before, every tunnel end had a thread of its own.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..tunnels import tunnel_type
from . import pyloop, wire
from .endpoint import Endpoint
from .fastpath import CCounters, CEnd

IMPLS = ("auto", "c", "python")


@dataclass
class Worker:
    """One direction of one tunnel end; stats() may be read while its thread runs."""

    name: str
    thread: threading.Thread
    stats: Callable[[], dict[str, Any]]


class StopSignal:
    """What the loops watch: a flag read per round and a pipe that wakes idle pollers."""

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


def _pinned(cpu: int | None, body: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})  # 0: this thread
            except OSError:
                pass
        body()
    return run


def _c_thread(lib: ctypes.CDLL, share: Sequence[Endpoint], stop: StopSignal, cpu: int | None,
              index: int) -> list[Worker]:
    """One dp_serve thread for these ends; a Worker per end and direction for the stats."""
    ends = (CEnd * len(share))()
    keep: list[Any] = [ends]   # what the C side points into lives as long as the thread's workers
    workers: list[Worker] = []
    thread = threading.Thread(target=_pinned(cpu, lambda: lib.dp_serve(ends, len(share), stop.read_fd,
                                                                          ctypes.byref(stop.flag))),
                              name=f"dataplane-{index}", daemon=True)
    for slot, ep in zip(ends, share):
        spec = ep.spec
        tmpl = wire.header_template(spec.mode, spec.local, spec.remote, spec.ttl)   # TTL 0: inherit
        remote = socket.inet_aton(spec.remote)
        enc, dec = CCounters(), CCounters()
        keep += [tmpl, remote, enc, dec]
        slot.tun, slot.raw, slot.overhead = ep.tun_fd, ep.sock.fileno(), spec.overhead
        slot.format, slot.vnet = tunnel_type(spec.mode).c_format, int(ep.vnet_hdr)
        slot.tmpl, slot.remote = tmpl, remote
        slot.enc, slot.dec = ctypes.pointer(enc), ctypes.pointer(dec)
        for name, counters in (("encap", enc), ("decap", dec)):
            workers.append(Worker(f"{_where(ep)}-{name}", thread, _stats(counters, keep)))
    return workers


def _stats(counters: CCounters, keep: list[Any]) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        _ = keep   # the closure holds the C side's buffers for as long as anyone reads the stats
        return counters.as_dict()
    return read


def _py_thread(share: Sequence[Endpoint], stop: StopSignal, index: int) -> list[Worker]:
    ends = [pyloop.PyEnd(ep) for ep in share]
    thread = threading.Thread(target=pyloop.serve, args=(ends, stop.read_fd), name=f"dataplane-py-{index}",
                              daemon=True)
    return [Worker(f"{_where(end.ep)}-{name}", thread, counters.as_dict)
            for end in ends for name, counters in (("encap", end.encap), ("decap", end.decap))]


def make_pool(endpoints: Sequence[Endpoint], lib: ctypes.CDLL | None, stop: StopSignal) -> list[Worker]:
    """Workers for every end and direction, served by one thread per CPU (see pick_cpus); lib None
    means the Python loops (which want no vnet header). Threads are created, not started."""
    cpus = pick_cpus(len(endpoints))
    shares: list[list[Endpoint]] = [[] for _ in cpus]
    for i, ep in enumerate(endpoints):
        shares[i % len(cpus)].append(ep)   # round robin: the two ends of a tunnel land on two CPUs
    workers: list[Worker] = []
    for index, (cpu, share) in enumerate(zip(cpus, shares)):
        if lib is None:
            assert not any(ep.vnet_hdr for ep in share), "the Python loops read bare IP packets"
            workers += _py_thread(share, stop, index)
        else:
            workers += _c_thread(lib, share, stop, cpu, index)
    return workers


def pick_cpus(ends: int) -> list[int | None]:
    """The pool: a CPU per thread, one thread per CPU we may use, and never more than `ends`.

    The two ends of a tunnel hand every packet to each other through the kernel, so the
    scheduler's wake-affine logic keeps pulling them onto one CPU, leaving the other to the
    applications; pinned to different CPUs they run in parallel (bench: ~10% more throughput on 2
    CPUs). With one CPU, or CLABGEN_DATAPLANE_PIN=0, the threads are not pinned.
    """
    cpus = sorted(os.sched_getaffinity(0))
    count = max(1, min(len(cpus), ends))
    if len(cpus) < 2 or os.environ.get("CLABGEN_DATAPLANE_PIN", "1") == "0":
        return [None] * count
    pinned: list[int | None] = list(cpus[:count])
    return pinned
