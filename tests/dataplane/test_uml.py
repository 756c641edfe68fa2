"""Wire compatibility with a real kernel: Linux 6.1's ipip/gre (in UML) <-> our userspace and BPF tunnels."""

from __future__ import annotations

import random
import re
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from clabgen.dataplane import bpf, start, stop
from clabgen.dataplane.nsenter import NETNS_RUN_DIR, entered
from clabgen.tunnels import tunnel_type

from . import lab as L
from . import uml

pytestmark = [pytest.mark.uml, pytest.mark.netns,
              pytest.mark.skipif(uml.UML is None, reason="user-mode-linux (`linux`) not installed")]
ETH = 14
OURS, KERNEL = "172.12.1.10", "172.12.1.11"
TTL = 33  # sent with ping -t: ttl inherit must copy it to the outer header


@pytest.fixture
def host_ns() -> Iterator[str]:
    """One namespace with a tap (172.12.1.10/24, MTU 9500) for the guest's NIC."""
    if not L.CAN_RUN:
        pytest.skip("needs root, network namespaces and /dev/net/tun")
    name = f"clabgen-t-{secrets.token_hex(3)}-uml"
    netns.create(name)
    try:
        with IPRoute(netns=name) as ipr:
            ipr.link("add", ifname="uml0", kind="tuntap", mode="tap")
            idx = ipr.link_lookup(ifname="uml0")[0]
            ipr.link("set", index=idx, mtu=9500)
            ipr.addr("add", index=idx, address=OURS, prefixlen=24)
            ipr.link("set", index=idx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield name
    finally:
        netns.remove(name)
        assert not (NETNS_RUN_DIR / name).exists()


DATA = random.Random(7).randbytes(4 << 20)


def _tcp_echo(ns: str, addr: str, data: bytes) -> bytes:
    """Send data to the guest's echo server through both tunnels and read it all back.

    Our side hands the TUN 64 KB TSO packets and splits them; the guest kernel checks every
    segment's TCP checksum. Its segments come back through our GRO coalescing.
    """
    with entered(ns):
        sock = socket.create_connection((addr, uml.ECHO_PORT), timeout=30)
    got = bytearray()
    with sock:
        sender = threading.Thread(target=lambda: (sock.sendall(data), sock.shutdown(socket.SHUT_WR)), daemon=True)
        sender.start()
        while chunk := sock.recv(1 << 20):
            got += chunk
        sender.join(30)
    return bytes(got)


def _outer(frames: list[bytes], src: str, proto: int) -> list[bytes]:
    return [f[ETH:] for f in frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == proto
            and f[ETH + 12:ETH + 16] == socket.inet_aton(src)]


def _inner_icmp(outer: bytes, overhead: int, icmp_type: int) -> bool:
    inner = outer[overhead:]
    return len(inner) >= 28 and inner[9] == 1 and inner[20] == icmp_type


def _bpf_end(ns: str, mode: str, mtu: int) -> None:
    """Our end as the emulation makes a BPF tunnel: device, address, then the programs."""
    end = bpf.BpfTunnel("tun0", mode, OURS, KERNEL, mtu)
    with entered(ns):
        bpf.create_device(end)
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname="tun0")[0]
            ipr.addr("add", index=index, address="1.1.1.1", prefixlen=24)
            ipr.link("set", index=index, state="up")
        bpf.attach([end], bpf.object_bytes())


@pytest.mark.parametrize("backend", ["userspace", "bpf"])
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_kernel_tunnel_and_our_tunnel_interoperate(host_ns: str, tmp_path: Path, mode: str, backend: str) -> None:
    overhead, proto = (20, 4) if mode == "ipip" else (24, 47)
    state = tmp_path / "state"
    spec = {"tunnels": [{"netns": host_ns, "ifname": "tun0", "mode": mode, "local": OURS, "remote": KERNEL,
                         "address": "1.1.1.1/24", "mtu": 9500 - overhead}]}
    guest_tunnel = uml.GuestTunnel(mode, f"{KERNEL}/24", KERNEL, OURS, "1.1.1.2/24", 9500 - overhead,
                                   ping="1.1.1.1", ping_ttl=TTL)
    if backend == "bpf":
        if why := bpf.unavailable(mode):
            pytest.skip(f"BPF tunnels unavailable here: {why}")
        _bpf_end(host_ns, mode, 9500 - overhead)
    else:
        start(spec, state)
    try:
        with L.capture(host_ns, "uml0") as cap, uml.boot(host_ns, "uml0", guest_tunnel, tmp_path / "uml") as guest:
            guest.wait_for("== guest-pinged", timeout=60)
            out = L.ping(host_ns, "1.1.1.2", ttl=TTL)
            guest.wait_for("== echo-listening", timeout=30)
            echoed = _tcp_echo(host_ns, "1.1.1.2", DATA)
            big = L.ping(host_ns, "1.1.1.2", count=2, size=8000)   # 8 KB inner packets, DF: no fragments
        print("\n".join(guest.lines[-60:]))
        ours = bpf.tunnels_in(host_ns).get("tun0") if backend == "bpf" else None
    finally:
        stop(state)

    link = guest.section("link")
    assert "ttl inherit" in link, link  # what `ip tunnel add` without ttl gives the kernel
    guest_ping = guest.section("guest-ping")
    assert re.search(r" 0% packet loss", guest_ping), guest_ping  # kernel -> userspace -> kernel
    assert out.returncode == 0, out.stdout + out.stderr  # userspace -> kernel -> userspace
    assert re.findall(r"ttl=(\d+)", out.stdout) == ["64"] * 3
    assert len(echoed) == len(DATA) and echoed == DATA  # bulk TCP, both ways, kernel <-> ours
    assert big.returncode == 0 and "0% packet loss" in big.stdout, big.stdout
    if backend == "bpf":   # our programs carried it all: nothing dropped, both directions counted
        assert ours is not None and ours.receives and ours.sent > 0 and ours.received > 0, ours
        # all the kernel sent was let in, but for what a keyless gre device sends besides IPv4 (its
        # IPv6 link-local chatter): the table's rule carries IPv4 only, as the userspace tunnel does
        not_ipv4 = [p for p in _outer(cap.frames, KERNEL, proto) if p[20:overhead] != tunnel_type(mode).shim]
        assert ours.send_dropped == 0 and ours.receive_dropped == len(not_ipv4), (ours, [p[20:24].hex() for p in not_ipv4])
    else:
        log = (state / "dataplane.log").read_text()
        if "with the c loops" in log:  # TSO splits and GRO merges met a real kernel's checksum checks
            merged = [int(n) for n in re.findall(r"'merged_writes': (\d+)", log)]
            assert len(merged) == 2 and min(merged) > 0, merged

    # the 3 default-size echo requests each side sent (the 8 KB ones are compared by the ping above)
    kernel = [p for p in _outer(cap.frames, KERNEL, proto) if _inner_icmp(p, overhead, 8) and len(p) < 200]
    userspace = [p for p in _outer(cap.frames, OURS, proto) if _inner_icmp(p, overhead, 8) and len(p) < 200]
    assert len(kernel) == 3 and len(userspace) == 3, (len(kernel), len(userspace))
    for k, u in zip(kernel, userspace):
        # version/IHL, TOS, total length, flags (DF), TTL, protocol: field by field, ID aside
        fields = "!BBHxxHBB"
        kf, uf = struct.unpack_from(fields, k), struct.unpack_from(fields, u)
        assert kf == uf, (kf, uf)
        assert kf[4] == TTL  # outer TTL copies the inner one: ttl inherit
        assert kf[3] & 0x4000  # DF: pmtudisc is the default
        assert k[20:overhead] == u[20:overhead]  # GRE: same flags/version/protocol (4 bytes, no key/csum/seq)
        assert k[overhead + 8] == TTL and u[overhead + 8] == TTL  # inner TTL untouched
    print(f"{mode}: kernel outer header {kernel[0][:overhead].hex()} ours {userspace[0][:overhead].hex()}")
