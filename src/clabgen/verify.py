"""Check a running lab against its contract: routes, tunnels, pings, encapsulation on the wire.

Works through the runtime interface only (node handles: exec and a network namespace), so the
same checks run on network namespaces, Docker and containerlab. Everything it expects comes
from the typed lab contract (expected.json); what a tunnel looks like comes from the tunnel table.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any
from xml.etree import ElementTree as ET

from . import netlink
from .contract import CaptureSpec, LabContract, PingSpec, RouteKey, RouteSpec
from .dataplane import bpf
from .errors import RuntimeFailure
from .labdir import RenderedLab
from .runtimes.base import NodeHandle, Runtime
from .tunnels import KERNEL_KINDS, TunnelType, checksum, tunnel_type

ETH_P_ALL = 0x0003
ETH_HLEN = 14
ARPHRD_ETHER = 1
PROBE_DATA = 56          # a default ping's payload: the LAN frame is 98 bytes as the plan predicts
PROBE_MARK = b"clabgen-verify "


@dataclass(frozen=True)
class Check:
    group: str       # routes | tunnel | ping | capture
    node: str
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Expectation:
    """What verify expects now: the contract's prediction, or one fault scenario's."""

    routes: dict[str, tuple[RouteSpec, ...]]
    pings: tuple[PingSpec, ...]
    unreachable: frozenset[tuple[str, str]]
    down: frozenset[str]                  # tunnels that carry nothing
    scenario: str | None = None

    @classmethod
    def of(cls, contract: LabContract, faults: tuple[str, ...] = ()) -> Expectation:
        routes = {n.name: n.routes for n in contract.nodes}
        if not faults:
            return cls(routes, contract.pings, frozenset(), frozenset())
        scenario = contract.scenario(faults[0]) if len(faults) == 1 else None
        if scenario is None:
            raise RuntimeFailure(f"no prediction for {' + '.join(faults)}: the contract predicts single faults "
                                 f"({len(contract.scenarios)} of them)", "clabgen fault LAB up ... to undo the others")
        for changed in scenario.routes:
            routes[changed.node] = changed.routes
        return cls(routes, scenario.pings, frozenset(scenario.unreachable), frozenset(scenario.tunnels), scenario.name)


def route_table(lab: RenderedLab, handles: dict[str, NodeHandle], node: str) -> dict[RouteKey, str]:
    ignore = set(lab.contract.ignore_route_devs)
    return {r.key(): r.text() for r in netlink.routes(handles[node].netns()) if r.dev not in ignore}


def route_differences(want: tuple[RouteSpec, ...], got: dict[RouteKey, str]) -> list[str]:
    table = {r.key(): r.text() for r in want}
    return [f"missing: {table[k]}" for k in table if k not in got] + [f"unexpected: {got[k]}" for k in got
                                                                     if k not in table]


READ_WORKERS = 4     # nodes whose tables are read at once


def check_routes(lab: RenderedLab, handles: dict[str, NodeHandle], expect: Expectation) -> list[Check]:
    nodes = [n for n in lab.contract.nodes if expect.routes[n.name] or n.role != "switch"]

    def one(name: str) -> Check:
        want = expect.routes[name]
        problems = route_differences(want, route_table(lab, handles, name))
        return Check("routes", name, f"{len(want)} routes", not problems,
                     "; ".join(problems) or f"all {len(want)} routes as expected, none extra")
    with ThreadPoolExecutor(max_workers=max(1, min(READ_WORKERS, len(nodes)))) as pool:
        return list(pool.map(one, [n.name for n in nodes]))


def check_tunnels(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle],
                  expect: Expectation | None = None) -> list[Check]:
    """Each tunnel end as the kernel (or the userspace dataplane) runs it: up, MTU, type, endpoints.
    A BPF tunnel end is read back from its programs' maps, its receive side included."""
    out = []
    faulted = expect.down if expect else frozenset()
    links: dict[str, dict[str, netlink.LinkInfo]] = {}     # each node's links, read once
    served: dict[str, list[dict[str, Any]]] = {}
    bpf_ends: dict[str, dict[str, bpf.BpfTunnelState]] = {}
    for t in lab.contract.tunnels:
        if t.policy:              # no interface: verify_crypto checks its security associations
            continue
        ttype = tunnel_type(t.type)
        for end in t.ends:
            label = f"{end.ifname} {t.type}"
            if end.node not in links:
                links[end.node] = {x.ifname: x for x in netlink.links(handles[end.node].netns())}
            link = links[end.node].get(end.ifname)
            if link is None:
                out.append(Check("tunnel", end.node, label, False, f"{end.ifname} does not exist"))
                continue
            if ttype.device_by_daemon:      # WireGuard: the kernel's device or its daemon's TUN
                from .verify_crypto import link_problems
                problems = link_problems(link.kind, t.type) + ([] if link.up else ["down"]) + \
                    ([] if link.mtu == t.mtu else [f"MTU {link.mtu}, expected {t.mtu}"])
                how = "kernel" if link.kind == ttype.kernel_kind else f"{link.kind} of its daemon"
                out.append(Check("tunnel", end.node, label, not problems,
                                 "; ".join(problems) or f"{how}, up, MTU {link.mtu} (endpoints: see its handshake)"))
                continue
            problems = []
            if t.name in faulted and expect is not None and (expect.scenario or "").startswith("tunnel "):
                out.append(Check("tunnel", end.node, label, not link.up,
                                 "down, as the fault says" if not link.up else "up, but the fault took it down"))
                continue
            if not link.up:
                problems.append("down")
            if link.mtu != t.mtu:
                problems.append(f"MTU {link.mtu}, expected {t.mtu}")
            local: str | None
            remote: str | None
            if end.node not in bpf_ends and link.kind not in KERNEL_KINDS:
                bpf_ends[end.node] = bpf.tunnels_in(handles[end.node].netns())
            if link.kind in KERNEL_KINDS:
                kind, local, remote = f"kernel {link.kind}", link.local, link.remote
                if link.kind != ttype.kernel_kind:
                    problems.append(f"kernel tunnel of kind {link.kind}, expected {ttype.kernel_kind}")
            elif end.ifname in bpf_ends[end.node]:
                ours = bpf_ends[end.node][end.ifname]
                kind, local, remote = f"bpf {ours.mode}", ours.local, ours.remote
                if ours.mode != t.type:
                    problems.append(f"BPF tunnel of type {ours.mode}, expected {t.type}")
                if not ours.receives:
                    problems.append(f"no BPF decap entry brings {ours.remote} > {ours.local} back to {end.ifname}")
            else:
                if end.node not in served:
                    served[end.node] = runtime.tunnel_state(lab, end.node)
                serving = next((u for u in served[end.node] if u.get("ifname") == end.ifname), None)
                if serving is None:
                    problems.append(f"{end.ifname} is a {link.kind or 'plain'} device but no userspace tunnel "
                                    "serves it (dataplane down?)")
                    kind, local, remote = "userspace", None, None
                else:
                    kind, local, remote = f"userspace {serving['mode']}", serving.get("local"), serving.get("remote")
                    if serving["mode"] != ttype.linux_mode:
                        problems.append(f"userspace mode {serving['mode']}, expected {ttype.linux_mode}")
            if (local, remote) != (end.local, end.remote) and local is not None:
                problems.append(f"endpoints {local} > {remote}, expected {end.local} > {end.remote}")
            detail = "; ".join(problems) or f"{kind}, up, MTU {link.mtu}, {local} > {remote}"
            out.append(Check("tunnel", end.node, label, not problems, detail))
    return out


_idents = itertools.count(int.from_bytes(os.urandom(2), "big"))
_idents_lock = threading.Lock()


def _readable(sock: socket.socket, seconds: float) -> bool:
    """Whether sock has data within `seconds`. poll, not select: a big lab's verify holds more than
    1024 descriptors (sockets in 200 namespaces), and select() cannot watch one numbered above that."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0, int(seconds * 1000))))


def _ping(handle: NodeHandle, address: str, tries: int = 3, wait: float = 2.0) -> tuple[int | None, str]:
    """One echo request at a time from the node (up to `tries`, `wait` seconds each), as
    `ping -c 1 -W 2` sends it, from a raw ICMP socket opened in the node's namespace: no process
    per ping, so a big lab's pings run side by side. The reply's TTL, or None and why not."""
    with _idents_lock:
        ident = next(_idents) & 0xFFFF
    payload = PROBE_MARK + b"ping " + os.urandom(4).hex().encode()
    payload += b"." * (PROBE_DATA - len(payload))
    target = socket.inet_aton(address)
    try:
        sock = netlink.in_netns(handle.netns(), lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                                         socket.IPPROTO_ICMP))
    except OSError as exc:
        return None, f"cannot open an ICMP socket in {handle.name}: {exc.strerror or exc}"
    last = "no reply"
    with sock:
        for seq in range(1, tries + 1):
            head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            message = head[:2] + struct.pack("!H", checksum(head + payload)) + head[4:] + payload
            try:
                sock.sendto(message, (address, 0))
            except OSError as exc:
                return None, f"ping: connect: {exc.strerror or exc}"
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                if not _readable(sock, left):
                    break
                pkt = sock.recv(65535)
                ihl = (pkt[0] & 0xF) * 4
                icmp = pkt[ihl:]
                if len(icmp) < 8 or pkt[12:16] != target:
                    if len(icmp) >= 36 and icmp[0] == 3 and icmp[32:34] == struct.pack("!H", ident):
                        last = f"From {socket.inet_ntoa(pkt[12:16])}: destination unreachable"
                    continue
                if icmp[0] == 0 and struct.unpack_from("!HH", icmp, 4) == (ident, seq):
                    return pkt[8], ""
            last = last if last != "no reply" else f"no reply within {wait:g}s"
    return None, f"{last} ({tries} {'try' if tries == 1 else 'tries'})"


KEYS_WAIT = 15.0    # seconds verify gives encrypted tunnels to agree keys (a loaded machine) before pinging
PING_WORKERS = 16    # pings in flight at once (each waits up to 2 s when there is no reply)


def check_pings(lab: RenderedLab, handles: dict[str, NodeHandle], expect: Expectation | None = None) -> list[Check]:
    expect = expect or Expectation.of(lab.contract)
    servers = {n.name: n for n in lab.contract.nodes if n.role == "server"}
    gone = [(a, b) for a, b in sorted(expect.unreachable)]

    def one(p: PingSpec) -> Check:
        ttl, err = _ping(handles[p.src], p.address)
        name = f"ping {p.dst} ({p.address})"
        if ttl is None:
            return Check("ping", p.src, name, False, f"no reply: {err}")
        want = " or ".join(str(t) for t in p.ttls())
        return Check("ping", p.src, name, ttl in p.ttls(), f"reply ttl={ttl}" + ("" if ttl in p.ttls() else
                                                                                   f", expected ttl={want}"))

    def none(pair: tuple[str, str]) -> Check:
        src, dst = pair
        address = next((i.address.split("/")[0] for i in servers[dst].interfaces if i.address), "")
        ttl, _ = _ping(handles[src], address, tries=1)
        return Check("ping", src, f"ping {dst} ({address})", ttl is None,
                     "no reply, as predicted (no path left)" if ttl is None else f"reply ttl={ttl}, but no path was predicted")

    with ThreadPoolExecutor(max_workers=max(1, min(PING_WORKERS, len(expect.pings) + len(gone)))) as pool:
        return list(pool.map(one, expect.pings)) + list(pool.map(none, gone))


# --- captures: verify's own echo request, followed across the tunnel --------------------------


@dataclass(frozen=True)
class Probe:
    """An ICMP echo request only verify sends: its identifier and payload tell it apart from a
    user's own pings between the same hosts."""

    ident: int
    payload: bytes

    @classmethod
    def new(cls) -> Probe:
        nonce = os.urandom(8).hex().encode()
        body = PROBE_MARK + nonce
        return cls(int.from_bytes(os.urandom(2), "big") or 1, body + b"." * (PROBE_DATA - len(body)))

    def message(self, seq: int) -> bytes:
        head = struct.pack("!BBHHH", 8, 0, 0, self.ident, seq & 0xFFFF)
        csum = checksum(head + self.payload)
        return head[:2] + struct.pack("!H", csum) + head[4:] + self.payload

    def matches(self, icmp: bytes) -> bool:
        return (len(icmp) >= 8 + len(self.payload) and icmp[0] == 8
                and struct.unpack_from("!H", icmp, 4)[0] == self.ident and icmp[8:8 + len(self.payload)] == self.payload)


def _open_capture(ns: str, ifname: str) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifname, 0))
        s.setblocking(False)
        return s
    return netlink.in_netns(ns, make)


def _send_probe(ns: str, dst: str, probe: Probe, seq: int) -> None:
    """From inside the sender's namespace: the kernel adds the IP header with its default TTL (64)."""
    sock = netlink.in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    with sock:
        sock.sendto(probe.message(seq), (dst, 0))


def _ip(pkt: bytes) -> tuple[int, str, str, int, bytes] | None:
    """(proto, src, dst, ttl, payload) of an IPv4 packet."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 0xF) * 4
    return pkt[9], str(IPv4Address(pkt[12:16])), str(IPv4Address(pkt[16:20])), pkt[8], pkt[ihl:]


def _probe_in(pkt: bytes, cap: CaptureSpec, probe: Probe) -> tuple[int, bytes] | None:
    """(inner TTL, ICMP bytes) if pkt is our probe from the sender to its destination."""
    ip = _ip(pkt)
    if ip and ip[0] == 1 and ip[1] == cap.src_address and ip[2] == cap.dst_address and probe.matches(ip[4]):
        return ip[3], ip[4]
    return None


Seen = tuple[int, int, bytes, tuple[str, str, int] | None]


def _seen(where: str, frame: bytes, cap: CaptureSpec, ttype: TunnelType, probe: Probe, tun_l2: int = 0) -> Seen | None:
    """(frame length, inner TTL, ICMP bytes, outer src/dst/proto) of our probe in a captured frame;
    on the underlay the tunnel type says where the inner packet starts."""
    if where == "tun":   # a tunnel carries raw IP (a BPF tunnel's veth frames it: tun_l2 bytes, cut off)
        hit = _probe_in(frame[tun_l2:], cap, probe)
        return (len(frame) - tun_l2, *hit, None) if hit else None
    if len(frame) < ETH_HLEN or frame[12:14] != b"\x08\x00":
        return None
    if where == "lan":
        hit = _probe_in(frame[ETH_HLEN:], cap, probe)
        return (len(frame), *hit, None) if hit else None
    outer = _ip(frame[ETH_HLEN:])
    # a transit gateway's underlay also carries the probe arriving from the previous tunnel
    if not outer or (outer[0], outer[1], outer[2]) != (cap.ip_proto, cap.outer_src, cap.outer_dst):
        return None
    offset = ttype.inner_offset(outer[4])
    if offset is None:
        return None
    hit = _probe_in(outer[4][offset:], cap, probe)
    return (len(frame), *hit, (outer[1], outer[2], outer[0])) if hit else None


def _drain(sock: socket.socket) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(sock.recv(65535))
        except BlockingIOError:
            return frames


def check_capture(lab: RenderedLab, handles: dict[str, NodeHandle], cap: CaptureSpec) -> Check:
    label = f"{cap.iface} {cap.tunnel}"
    ttype = tunnel_type(next(t.type for t in lab.contract.tunnels if t.name == cap.tunnel))
    probe = Probe.new()
    socks = {
        "lan": _open_capture(handles[cap.lan_node].netns(), cap.lan_if),
        "tun": _open_capture(handles[cap.node].netns(), cap.tunnel_if),
        "underlay": _open_capture(handles[cap.node].netns(), cap.iface),
    }
    seen: dict[str, Seen] = {}
    tun_l2 = ETH_HLEN if socks["tun"].getsockname()[3] == ARPHRD_ETHER else 0
    # A BPF tunnel end (the one tunnel device with Ethernet framing) wraps what it sends on its tc
    # egress, before the device's taps: the probe shows on the LAN and, wrapped, on the underlay.
    wanted = ("lan", "underlay") if tun_l2 else ("lan", "tun", "underlay")
    try:
        for seq in range(1, 4):
            _send_probe(handles[cap.lan_node].netns(), cap.dst_address, probe, seq)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and not all(w in seen for w in wanted):
                for where, s in socks.items():
                    for frame in _drain(s):
                        hit = _seen(where, frame, cap, ttype, probe, tun_l2)
                        if hit:
                            seen.setdefault(where, hit)
                time.sleep(0.01)
            if all(w in seen for w in wanted):
                break
    finally:
        for s in socks.values():
            s.close()
    places = {"lan": f"on {cap.lan_node}:{cap.lan_if}", "tun": f"on {cap.node}:{cap.tunnel_if}",
             "underlay": f"on {cap.node}:{cap.iface} inside an outer {cap.outer_src} > {cap.outer_dst} "
                         f"proto {cap.ip_proto} header"}
    missing = [f"verify's echo request {cap.src_address} > {cap.dst_address} not seen {places[w]}"
               for w in wanted if w not in seen]
    if missing:
        return Check("capture", cap.node, label, False, "; ".join(missing))
    return Check("capture", cap.node, label, *_judge(cap, seen))


def _judge(cap: CaptureSpec, seen: dict[str, Seen]) -> tuple[bool, str]:
    lan_len, lan_ttl, lan_icmp, _ = seen["lan"]
    und_len, und_ttl, und_icmp, outer = seen["underlay"]
    # a BPF end's device does not show what it sends (check_capture): judged on the LAN and underlay
    tun_len, tun_ttl, tun_icmp, _ = seen.get("tun", (lan_len - ETH_HLEN, und_ttl, und_icmp, None))
    problems = []
    if lan_len != cap.lan_frame_len:
        problems.append(f"LAN frame {lan_len} bytes, expected {cap.lan_frame_len}")
    if und_len != cap.underlay_frame_len:
        problems.append(f"underlay frame {und_len} bytes, expected {cap.underlay_frame_len}")
    if tun_len != lan_len - ETH_HLEN:
        problems.append(f"{cap.tunnel_if} packet {tun_len} bytes: expected raw IP of {lan_len - ETH_HLEN} "
                        "(no Ethernet header)")
    if outer != (cap.outer_src, cap.outer_dst, cap.ip_proto):
        problems.append(f"outer header {outer}, expected {cap.outer_src} > {cap.outer_dst} proto {cap.ip_proto}")
    if lan_ttl != cap.lan_ttl:
        problems.append(f"inner TTL {lan_ttl} on the LAN, expected {cap.lan_ttl}")
    if (tun_ttl, und_ttl) != (cap.tunnel_ttl, cap.tunnel_ttl):
        problems.append(f"inner TTL {tun_ttl} on {cap.tunnel_if} and {und_ttl} on {cap.iface}, expected "
                        f"{cap.tunnel_ttl} ({cap.lan_ttl - cap.tunnel_ttl} router(s) on the way each take one)")
    if not lan_icmp == tun_icmp == und_icmp:
        problems.append("the ICMP message changed on its way")
    on_tun = f"{cap.tunnel_if} {tun_len} B raw IP ttl {tun_ttl}" if "tun" in seen else \
        f"{cap.tunnel_if} wraps on its egress (BPF), unseen there"
    detail = "; ".join(problems) or (
        f"LAN {lan_len} B {cap.src_address} > {cap.dst_address} ttl {lan_ttl}; {on_tun}; {cap.iface} {und_len} B "
        f"outer {cap.outer_src} > {cap.outer_dst} proto {cap.ip_proto} around the unchanged inner packet")
    return not problems, detail


def verify(lab: RenderedLab, runtime: Runtime, faults: tuple[str, ...] = (), wait: float = 60.0) -> list[Check]:
    """Every check against the prediction for the lab as it is now (its faults); with dynamic
    routing, first wait (up to `wait` seconds) until the routing has converged."""
    with netlink.session():      # one netlink socket per node for every route and link read
        return _verify(lab, runtime, faults, wait)


def _verify(lab: RenderedLab, runtime: Runtime, faults: tuple[str, ...], wait: float) -> list[Check]:
    expect = Expectation.of(lab.contract, faults)
    handles = runtime.nodes(lab)
    checks: list[Check] = []
    if lab.contract.adjacencies:
        from .verify_routing import routing_checks
        checks += routing_checks(lab, runtime, handles, expect, wait)
    checks += check_routes(lab, handles, expect)
    checks += check_tunnels(lab, runtime, handles, expect)
    if lab.contract.crypto:
        from .verify_crypto import wait_for_keys
        wait_for_keys(lab, runtime, handles, expect.down, min(wait, KEYS_WAIT))
    checks += check_pings(lab, handles, expect)
    if lab.contract.crypto:
        from .verify_crypto import handshake_checks, mtu_checks
        checks += handshake_checks(lab, runtime, handles, expect.down) + mtu_checks(lab, handles, expect.down)
    if not faults:      # captures follow the fault-free paths
        checks += _captures(lab, handles)
    return checks


def _captures(lab: RenderedLab, handles: dict[str, NodeHandle]) -> list[Check]:
    """Plain tunnels' captures a few at a time; encrypted ones alone afterwards, so that no other
    probe's cleartext crosses an underlay while it is searched for cleartext."""
    from .verify_crypto import check_capture as check_encrypted
    plain = [c for c in lab.contract.captures if lab.contract.crypto_of(c.tunnel) is None]
    encrypted = [c for c in lab.contract.captures if lab.contract.crypto_of(c.tunnel) is not None]

    def capture(check: Callable[[RenderedLab, dict[str, NodeHandle], CaptureSpec], Check], c: CaptureSpec) -> Check:
        try:
            return check(lab, handles, c)
        except OSError as exc:   # e.g. the interface to capture on is gone
            return Check("capture", c.node, f"{c.iface} {c.tunnel}", False, f"cannot capture: {exc.strerror or exc}")
    with ThreadPoolExecutor(max_workers=max(1, min(CAPTURE_WORKERS, len(plain)))) as pool:
        out = list(pool.map(lambda c: capture(check_capture, c), plain))
    return out + [capture(check_encrypted, c) for c in encrypted]


CAPTURE_WORKERS = 8  # captures at once: each follows its own probe (its identifier and payload)


def junit(lab: RenderedLab, checks: list[Check]) -> bytes:
    suite = ET.Element("testsuite", name=f"clabgen-verify-{lab.name}", tests=str(len(checks)),
                       failures=str(sum(not c.ok for c in checks)))
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"{lab.name}.{c.group}", name=f"{c.node}: {c.name}")
        if not c.ok:
            ET.SubElement(case, "failure", message=c.detail).text = c.detail
        else:
            ET.SubElement(case, "system-out").text = c.detail
    return bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True))
