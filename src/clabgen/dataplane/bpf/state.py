"""Read BPF tunnel ends back from the kernel: what verify checks and inspect shows.

Nothing is recorded on the side: a BPF tunnel end is a tunnel device with our encap program on
its tc egress, and what it does is that program's map entry (endpoints,
protocol, TTL, counters) plus the decap entry that sends the remote's packets back to it. So a
removed filter, a missing entry or an entry for other endpoints shows as what it is.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute

from ..nsenter import entered
from . import libbpf, source
from .ends import DECAP_KEY, DECAP_MAP, DECAP_PROG, DECAP_VALUE, ENCAP_MAP, ENCAP_PROG, ENCAP_VALUE, TAP_OFFSET

CLSACT_INGRESS, CLSACT_EGRESS = 0xFFFFFFF2, 0xFFFFFFF3
FILTER_NAME = re.compile(r"(\w+):\[(\d+)\]")


@dataclass(frozen=True)
class BpfTunnelState:
    """One BPF tunnel end as the kernel runs it."""

    ifname: str
    peer: str
    mode: str
    local: str
    remote: str
    ttl: int
    receives: bool        # a decap entry for remote > local sends packets back to this end
    decap_on: tuple[str, ...]   # the interfaces whose ingress runs the decap program
    sent: int             # packets (segments) wrapped, and dropped on the way out (not IPv4, no route)
    send_dropped: int
    received: int         # packets unwrapped, and refused by the receive rule (or RFC 6040)
    receive_dropped: int

    def as_dict(self) -> dict[str, Any]:
        return {"ifname": self.ifname, "peer": self.peer, "mode": self.mode, "local": self.local,
                "remote": self.remote, "ttl": self.ttl, "receives": self.receives, "decap_on": list(self.decap_on),
                "packets": {"sent": self.sent, "send_dropped": self.send_dropped, "received": self.received,
                            "receive_dropped": self.receive_dropped}, "kind": "bpf"}


def _programs(ipr: IPRoute, index: int, parent: int = CLSACT_INGRESS) -> dict[str, int]:
    """Our programs on a device's tc ingress (or egress): name -> program id."""
    out: dict[str, int] = {}
    try:
        filters = ipr.get_filters(index=index, parent=parent)
    except Exception:   # no clsact qdisc on this device
        return out
    for f in filters:
        if f.get_attr("TCA_KIND") != "bpf":
            continue
        opts = f.get_attr("TCA_OPTIONS")
        if opts is None:
            continue
        # libbpf names a filter "<program>:[<id>]" (pyroute2 does not decode TCA_BPF_ID)
        found = FILTER_NAME.fullmatch(str(opts.get_attr("TCA_BPF_NAME") or ""))
        if found:
            out[found[1]] = int(found[2])
    return out


def program_ids(netns: str | None) -> set[int]:
    """Ids of our programs on any device's tc ingress in a namespace (what must go with it)."""
    if libbpf.available() is not None:
        return set()
    with entered(netns), IPRoute() as ipr:
        return {pid for link in ipr.get_links() for parent in (CLSACT_INGRESS, CLSACT_EGRESS)
                for pid in _programs(ipr, link["index"], parent).values()}


def tunnels_in(netns: str | None) -> dict[str, BpfTunnelState]:
    """Every BPF tunnel end in a namespace (a name under /run/netns or a /proc/PID/ns/net path), by
    tunnel device name; {} where there is none, or no libbpf to read them with."""
    if libbpf.available() is not None:
        return {}
    with entered(netns), IPRoute() as ipr:
        links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        progs = {index: _programs(ipr, index) for index in links}
        egress = {index: _programs(ipr, index, CLSACT_EGRESS) for index in links}
    encap = {i: p[ENCAP_PROG] for i, p in egress.items() if ENCAP_PROG in p}
    decap_on = tuple(sorted(links[i] for i, p in progs.items() if DECAP_PROG in p))
    decap_ids = {p[DECAP_PROG] for p in progs.values() if DECAP_PROG in p}
    types = source.carried()
    out: dict[str, BpfTunnelState] = {}
    fds: list[int] = []
    try:
        decap_maps = []
        for prog_id in decap_ids:
            maps = libbpf.prog_maps(prog_id)
            fds += maps.values()
            if DECAP_MAP in maps:
                decap_maps.append(maps[DECAP_MAP])
        opened: dict[int, dict[str, int]] = {}   # one program serves every end of a namespace
        for tun_index, prog_id in encap.items():
            if prog_id not in opened:
                opened[prog_id] = libbpf.prog_maps(prog_id)
                fds += opened[prog_id].values()
            maps = opened[prog_id]
            raw = libbpf.lookup(maps[ENCAP_MAP], struct.pack("=I", tun_index), ENCAP_VALUE.size) \
                if ENCAP_MAP in maps else None
            if raw is None:
                continue
            local, remote, type_index, peer_index, ttl, _tap, _id, sent, _bytes, dropped = ENCAP_VALUE.unpack(raw)
            if type_index >= len(types) or peer_index not in links:
                continue
            # what the device's egress let through is wrapped on the peer's ingress: counted there
            if ENCAP_PROG in progs.get(peer_index, {}):
                more = libbpf.lookup(maps[ENCAP_MAP], struct.pack("=I", peer_index), ENCAP_VALUE.size)
                if more is not None:
                    sent += ENCAP_VALUE.unpack(more)[7]
                    dropped += ENCAP_VALUE.unpack(more)[9]
            ttype = types[type_index]
            key = DECAP_KEY.pack(remote, local, ttype.ip_proto)
            received, refused, receives = 0, 0, False
            for fd in decap_maps:
                back = libbpf.lookup(fd, key, DECAP_VALUE.size)
                if back is not None:
                    _t, peer_ifindex, _tun, _mac, received, _b, refused = DECAP_VALUE.unpack(back)
                    receives = peer_ifindex == peer_index
            out[links[tun_index]] = BpfTunnelState(
                links[tun_index], links[peer_index], ttype.name, socket.inet_ntoa(local), socket.inet_ntoa(remote),
                ttl, receives, decap_on, sent, dropped, received, refused)
    finally:
        for fd in fds:
            os.close(fd)
    return out


@contextmanager
def tapped(netns: str | None, ifname: str) -> Iterator[bool]:
    """While the block runs, a BPF tunnel device shows what it sends to a capture: its egress lets
    packets through and its peer's ingress wraps them (a little slower). False: not a BPF tunnel end."""
    if libbpf.available() is not None:
        yield False
        return
    with entered(netns), IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        prog = _programs(ipr, found[0], CLSACT_EGRESS).get(ENCAP_PROG) if found else None
    if prog is None:
        yield False
        return
    maps = libbpf.prog_maps(prog)
    key = struct.pack("=I", found[0])
    try:
        if ENCAP_MAP not in maps:
            yield False
            return
        _set_tap(maps[ENCAP_MAP], key, 1)
        try:
            yield True
        finally:
            _set_tap(maps[ENCAP_MAP], key, 0)
    finally:
        for fd in maps.values():
            os.close(fd)


def _set_tap(map_fd: int, key: bytes, on: int) -> None:
    raw = libbpf.lookup(map_fd, key, ENCAP_VALUE.size)
    if raw is not None:    # a packet counted between this read and write is lost from the counters, no more
        libbpf.update(map_fd, key, raw[:TAP_OFFSET] + bytes([on]) + raw[TAP_OFFSET + 1:])
