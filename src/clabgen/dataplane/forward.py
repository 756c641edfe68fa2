"""Run one tunnel's two directions on threads, with the C loops or the Python ones."""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def _c_workers(lib: ctypes.CDLL, ep: Endpoint, stop: StopSignal) -> list[Worker]:
    spec, raw = ep.spec, ep.sock.fileno()
    tmpl = wire.header_template(spec.mode, spec.local, spec.remote)
    remote = socket.inet_aton(spec.remote)
    enc, dec = CCounters(), CCounters()
    flag = ctypes.byref(stop.flag)
    vnet = int(ep.vnet_hdr)
    calls = (
        ("encap", enc, lambda: lib.dp_encap(ep.tun_fd, raw, tmpl, spec.overhead, vnet, stop.read_fd, flag,
                                            ctypes.byref(enc))),
        ("decap", dec, lambda: lib.dp_decap(raw, ep.tun_fd, int(spec.mode == "gre"), remote, vnet,
                                            stop.read_fd, flag, ctypes.byref(dec))),
    )
    return [Worker(f"{_where(ep)}-{name}", threading.Thread(target=call, name=f"{spec.ifname}-{name}", daemon=True),
                   counters.as_dict)
            for name, counters, call in calls]


def _py_workers(ep: Endpoint, stop: StopSignal) -> list[Worker]:
    workers = []
    for name, loop in (("encap", pyloop.encap_loop), ("decap", pyloop.decap_loop)):
        counters = pyloop.Counters()
        thread = threading.Thread(target=loop, args=(ep, stop.read_fd, counters),
                                  name=f"{ep.spec.ifname}-{name}", daemon=True)
        workers.append(Worker(f"{_where(ep)}-{name}", thread, counters.as_dict))
    return workers


def make_workers(ep: Endpoint, lib: ctypes.CDLL | None, stop: StopSignal) -> list[Worker]:
    """Workers for both directions; lib None means the Python loops (which want no vnet header)."""
    if lib is None:
        assert not ep.vnet_hdr, "the Python loops read bare IP packets"
        return _py_workers(ep, stop)
    return _c_workers(lib, ep, stop)
