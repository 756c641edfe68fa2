"""The BPF tunnel in a real lab: s1 -- gw1 == underlay == gw2 -- s2, tc programs instead of a process."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from clabgen.dataplane import bpf, wire
from clabgen.dataplane.bpf import build, libbpf
from clabgen.dataplane.nsenter import entered
from clabgen.tunnels import GRE_CSUM, GRE_KEY, GRE_SEQ, tunnel_type

from . import lab as L

pytestmark = pytest.mark.netns
ETH = 14
WHY_NOT = bpf.unavailable("ipip") if L.CAN_RUN else "needs root"
needs_bpf = pytest.mark.skipif(WHY_NOT is not None, reason=f"BPF tunnels unavailable here: {WHY_NOT}")


def _outer_frames(frames: list[bytes], proto: int, src: str) -> list[bytes]:
    return [f for f in frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == proto
            and f[ETH + 12:ETH + 16] == socket.inet_aton(src)]


def _forwarded(ip: bytes) -> bytes:
    out = bytearray(ip)
    out[8] -= 1
    out[10:12] = b"\0\0"
    out[10:12] = struct.pack("!H", wire.checksum(bytes(out[:20])))
    return bytes(out)


@needs_bpf
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_bpf_tunnel_carries_pings_like_the_kernel(lab: L.Lab, mode: str) -> None:
    lab.bpf_tunnels(mode)
    L.route_lans(lab, via_tunnel=True)
    with L.capture(lab.ns("gw1"), "und0") as und, L.capture(lab.ns("gw1"), "lan0") as lan, \
            L.capture(lab.ns("gw1"), "tun0") as tun:
        out = lab.ping("s1", L.S2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.findall(r"ttl=(\d+)", out.stdout) == ["62"] * 3
    back = lab.ping("s2", L.S1)
    assert back.returncode == 0 and re.findall(r"ttl=(\d+)", back.stdout) == ["62"] * 3

    t = tunnel_type(mode)
    requests = [f[ETH:] for f in lan.frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == 1
                and f[ETH + 12:ETH + 16] == socket.inet_aton(L.S1)]
    outer = _outer_frames(und.frames, t.ip_proto, L.UNDERLAY["gw1"])
    assert len(requests) == 3 and len(outer) == 3
    ids = []
    for frame, request in zip(outer, requests):
        assert len(frame) == 98 + t.overhead
        ver, tos, length, ident, frag, ttl, p = struct.unpack_from("!BBHHHBB", frame, ETH)
        assert (ver, tos, length, frag, p) == (0x45, 0, 84 + t.overhead, 0x4000, t.ip_proto)
        assert ttl == 63   # ttl inherit
        assert frame[ETH + 16:ETH + 20] == socket.inet_aton(L.UNDERLAY["gw2"])
        assert wire.checksum(frame[ETH:ETH + 20]) == 0
        assert frame[ETH + 20:ETH + t.overhead] == t.shim
        assert frame[ETH + t.overhead:] == _forwarded(request)
        ids.append(ident)
    assert ids[1] == ids[0] + 1 and ids[2] == ids[1] + 1   # the outer ID counts up per tunnel
    # The tunnel device shows what it receives (the replies), as a capture on a kernel tunnel would;
    # what it sends is wrapped on its tc egress, before the device's taps see it.
    inner = [f[ETH:] for f in tun.frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == 1]
    assert len([p for p in inner if p[20] == 0]) == 3 and not [p for p in inner if p[20] == 8]
    state = bpf.tunnels_in(lab.ns("gw1"))["tun0"]
    assert (state.mode, state.local, state.remote, state.ttl, state.receives) == (
        mode, L.UNDERLAY["gw1"], L.UNDERLAY["gw2"], 0, True)
    assert state.peer == "tun0-bpf" and "und0" in state.decap_on and state.sent >= 6 and state.received >= 6


def _tcp_roundtrip(lab: L.Lab, size: int) -> None:
    payload = os.urandom(size)
    with entered(lab.ns("s2")):
        server = socket.create_server((L.S2, 5001))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            chunks = []
            while chunk := conn.recv(1 << 20):
                chunks.append(chunk)
            got.append(b"".join(chunks))
            conn.sendall(got[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with entered(lab.ns("s1")):
        client = socket.create_connection((L.S2, 5001), timeout=20)
    echoed = bytearray()
    with client, server:
        sender = threading.Thread(target=lambda: (client.sendall(payload), client.shutdown(socket.SHUT_WR)),
                                  daemon=True)
        sender.start()
        while chunk := client.recv(1 << 20):
            echoed += chunk
        sender.join(20)
        thread.join(20)
    assert got and hashlib.sha256(got[0]).digest() == hashlib.sha256(payload).digest()
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


@needs_bpf
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_bpf_bulk_tcp_arrives_intact_and_travels_whole(lab: L.Lab, mode: str) -> None:
    """16 MB s1 -> s2 and back; TCP packets of up to 64 KB are wrapped whole (the kernel splits
    them on the underlay), so the capture at gw1's underlay sees outer packets above its MTU."""
    lab.bpf_tunnels(mode)
    L.route_lans(lab, via_tunnel=True)
    with L.capture(lab.ns("gw1"), "und0") as und:
        _tcp_roundtrip(lab, 16 << 20)
    outer = _outer_frames(und.frames, tunnel_type(mode).ip_proto, L.UNDERLAY["gw1"])
    assert max(len(f) for f in outer) > L.MTU + ETH, "no GSO packet was wrapped whole"


@needs_bpf
def test_bpf_fixed_ttl(lab: L.Lab) -> None:
    """`ttl 64` on the tunnel: the outer TTL stays 64 whatever the inner one (VyOS parameters ip ttl)."""
    lab.bpf_tunnels("ipip", ttl=64)
    L.route_lans(lab, via_tunnel=True)
    with L.capture(lab.ns("gw1"), "und0") as und:
        assert lab.ping("s1", L.S2, count=2, ttl=9).returncode == 0
    outer = _outer_frames(und.frames, 4, L.UNDERLAY["gw1"])
    assert outer and all(f[ETH + 8] == 64 and f[ETH + 20 + 8] == 8 for f in outer)
    assert bpf.tunnels_in(lab.ns("gw1"))["tun0"].ttl == 64


@needs_bpf
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_bpf_tunnel_carries_multicast(lab: L.Lab, mode: str) -> None:
    """What OSPF sends (224.0.0.x with TTL 1) leaves the tunnel device with a multicast MAC, which
    the kernel's redirect to a neighbour refuses unless the program rewrites it: the all-hosts
    group pinged through the tunnel, answered from the other end."""
    lab.bpf_tunnels(mode)
    lab.run("gw2", ["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"], check=True)
    out = lab.run("gw1", ["ping", "-c", "2", "-W", "2", "-t", "1", "-I", "tun0", "224.0.0.1"])
    assert out.returncode == 0 and "from 1.1.1.2" in out.stdout, out.stdout + out.stderr
    assert bpf.tunnels_in(lab.ns("gw1"))["tun0"].send_dropped == 0


@needs_bpf
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_bpf_tunnel_first_packet_waits_for_arp(lab: L.Lab, mode: str) -> None:
    """The very first packet, before the underlay neighbour is known: the kernel holds it until ARP
    answers and must then send it by the outer route, to the peer's MAC (by the inner route via the
    tunnel device it left with the tunnel device's own MAC, which a bridge drops)."""
    lab.bpf_tunnels(mode)
    L.route_lans(lab, via_tunnel=True)
    for gw in ("gw1", "gw2"):
        lab.run(gw, ["ip", "neigh", "flush", "dev", "und0"], check=True)
    peer_mac = bytes.fromhex(lab.run("gw2", ["cat", "/sys/class/net/und0/address"], check=True).stdout.strip()
                             .replace(":", ""))
    with L.capture(lab.ns("gw1"), "und0") as und:
        out = lab.ping("s1", L.S2, count=1)
    assert out.returncode == 0, out.stdout + out.stderr
    outer = _outer_frames(und.frames, tunnel_type(mode).ip_proto, L.UNDERLAY["gw1"])
    assert outer and outer[0][:6] == peer_mac, [f[:12].hex() for f in outer]


@needs_bpf
def test_bpf_tunnel_device_shows_what_it_sends_while_tapped(lab: L.Lab) -> None:
    """Egress wraps packets before the device's taps see them; while a capture holds the device
    tapped, its peer's ingress wraps them instead, so the capture sees both ways; afterwards egress
    wraps again (the device shows only what it receives)."""
    lab.bpf_tunnels("ipip")
    L.route_lans(lab, via_tunnel=True)

    def echoes(frames: list[bytes]) -> tuple[int, int]:
        icmp = [f[ETH + 20] for f in frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == 1]
        return icmp.count(8), icmp.count(0)

    with bpf.tapped(lab.ns("gw1"), "tun0") as on, L.capture(lab.ns("gw1"), "tun0") as tun:
        assert on
        assert lab.ping("s1", L.S2).returncode == 0
    assert echoes(tun.frames) == (3, 3)
    with L.capture(lab.ns("gw1"), "tun0") as tun:
        assert lab.ping("s1", L.S2).returncode == 0
    assert echoes(tun.frames) == (0, 3)
    with bpf.tapped(lab.ns("gw1"), "lan0") as on:
        assert not on


def _tun_rx(lab: L.Lab) -> int:
    with IPRoute(netns=lab.ns("gw1")) as ipr:
        return int(ipr.get_links(ifname="tun0")[0].get("stats64")["rx_packets"])


def _inner_echo(data: bytes = b"") -> bytes:
    icmp = bytearray(b"\x08\x00\x00\x00\x00\x00\x00\x00" + data)
    icmp[2:4] = struct.pack("!H", wire.checksum(bytes(icmp)))
    inner = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 7, 0, 64, 1, 0, socket.inet_aton(L.S2),
                                  socket.inet_aton(L.S1)) + icmp)
    inner[10:12] = struct.pack("!H", wire.checksum(bytes(inner[:20])))
    return bytes(inner)


def _send_outer(lab: L.Lab, src: str, proto: int, body: bytes, tos: int = 0) -> None:
    with entered(lab.ns("gw2")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    with sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        outer = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(body), 0, 0x4000, 64, proto, 0,
                            socket.inet_aton(src), socket.inet_aton(L.UNDERLAY["gw1"]))
        sock.sendto(outer + body, (L.UNDERLAY["gw1"], 0))
    time.sleep(0.2)


@needs_bpf
def test_bpf_only_the_configured_remote_gets_in(lab: L.Lab) -> None:
    lab.bpf_tunnels("ipip")
    with IPRoute(netns=lab.ns("gw2")) as ipr:
        ipr.addr("add", index=ipr.link_lookup(ifname="und0")[0], address="172.12.1.99", prefixlen=24)
    before = _tun_rx(lab)
    _send_outer(lab, "172.12.1.99", 4, _inner_echo())   # spoofed remote: the stack's, not the tunnel's
    assert _tun_rx(lab) == before
    _send_outer(lab, L.UNDERLAY["gw2"], 4, _inner_echo())
    assert _tun_rx(lab) == before + 1


@needs_bpf
def test_bpf_gre_receive_rule_comes_from_the_table(lab: L.Lab) -> None:
    """Checksum (checked) and sequence number accepted, a key or a bad checksum refused: the rule
    the Python dataplane applies (tunnels.GRE's rx_* fields), compiled into the program."""
    lab.bpf_tunnels("gre")
    inner = _inner_echo(os.urandom(1001))   # the checksum is summed in chunks: several, and an odd tail

    def gre(flags: int, *extra: bytes) -> bytes:
        return struct.pack("!HH", flags, 0x0800) + b"".join(extra)

    zeroed = gre(GRE_CSUM | GRE_SEQ, b"\0\0\0\0", struct.pack("!I", 7))
    good = zeroed[:4] + struct.pack("!H", wire.checksum(zeroed + inner)) + zeroed[6:]
    bad = zeroed[:4] + b"\x12\x34" + zeroed[6:]
    cases = [(gre(0), 1), (gre(GRE_SEQ, struct.pack("!I", 9)), 1), (good, 1), (bad, 0),
             (gre(GRE_KEY, struct.pack("!I", 5)), 0), (struct.pack("!HH", 0, 0x86DD), 0)]
    for shim, accepted in cases:
        before = _tun_rx(lab)
        _send_outer(lab, L.UNDERLAY["gw2"], 47, shim + inner)
        assert _tun_rx(lab) == before + accepted, shim.hex()
    assert tunnel_type("gre").inner_offset(good + inner) == len(good)   # the same rule in Python


@needs_bpf
def test_bpf_ecn_follows_rfc6040(lab: L.Lab) -> None:
    """Outer CE over an ECT inner packet marks it CE (checksum fixed); over a not-ECT one it is dropped."""
    lab.bpf_tunnels("ipip")
    L.route_lans(lab, via_tunnel=True)
    for inner_tos, delivered in ((0x02, 0x03), (0x00, None)):
        inner = bytearray(_inner_echo())
        inner[1] = inner_tos
        inner[10:12] = b"\0\0"
        inner[10:12] = struct.pack("!H", wire.checksum(bytes(inner[:20])))
        with L.capture(lab.ns("s1"), "eth0") as cap:
            _send_outer(lab, L.UNDERLAY["gw2"], 4, bytes(inner), tos=0x03)
        got = [f[ETH:] for f in cap.frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == 1
               and f[ETH + 16:ETH + 20] == socket.inet_aton(L.S1) and f[ETH + 20] == 8]
        if delivered is None:
            assert not got
        else:
            assert got and got[0][1] == delivered and wire.checksum(got[0][:20]) == 0


def _prog_alive(prog_id: int) -> bool:
    fd = libbpf.lib().bpf_prog_get_fd_by_id(prog_id)
    if fd >= 0:
        os.close(fd)
        return True
    return ctypes.get_errno() != errno.ENOENT and fd != -errno.ENOENT


@needs_bpf
def test_bpf_programs_and_maps_go_with_the_namespaces() -> None:
    """Nothing pinned, no file: once the lab's namespaces are gone, so are our programs and maps."""
    lab = L.build()
    try:
        lab.bpf_tunnels("gre")
        ids = []
        for gw in ("gw1", "gw2"):
            with entered(lab.ns(gw)), IPRoute() as ipr:
                for name in ("tun0-bpf", "und0"):
                    for f in ipr.get_filters(index=ipr.link_lookup(ifname=name)[0], parent=0xFFFFFFF2):
                        found = re.search(r":\[(\d+)\]", str(f.get_nested("TCA_OPTIONS", "TCA_BPF_NAME") or ""))
                        if found:
                            ids.append(int(found[1]))
        assert len(ids) == 4 and all(_prog_alive(i) for i in ids)
    finally:
        L.destroy(lab)
    deadline = time.monotonic() + 10
    while any(_prog_alive(i) for i in ids) and time.monotonic() < deadline:
        time.sleep(0.1)   # namespaces are cleaned up by a kernel worker, a moment later
    assert not any(_prog_alive(i) for i in ids)
    assert not os.path.exists("/sys/fs/bpf/tc") or not any(os.scandir("/sys/fs/bpf/tc"))


@needs_bpf
def test_a_refused_program_says_what_the_verifier_said(tmp_path: Path) -> None:
    """libbpf's debug chatter is dropped (it made every load 6x slower), its warnings are kept: the
    verifier's log reaches the exception."""
    src = tmp_path / "bad.bpf.c"
    src.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                   'SEC("tc") int bad(struct __sk_buff *skb) { return *(int *)(long)skb->data; }\n'
                   'char LICENSE[] SEC("license") = "GPL";\n')
    obj = tmp_path / "bad.o"
    subprocess.run([build.compiler(), *build.FLAGS, *build._includes(), "-c", str(src), "-o", str(obj)], check=True)
    with pytest.raises(libbpf.LibbpfError) as refused:
        libbpf.LoadedObject(obj.read_bytes())
    assert "invalid access to packet" in "\n".join(refused.value.log), refused.value.log[-10:]
    assert "verifier" in str(refused.value)
