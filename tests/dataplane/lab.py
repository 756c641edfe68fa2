"""The tunnel-lab shape, in real, uniquely named namespaces: s1 -- gw1 == underlay == gw2 -- s2.

Used by the dataplane tests and bench/bench_tunnel.py. Everything is created inside namespaces
named clabgen-t-<random>-<role>, and destroy() removes them and every process started here.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute, netns

from clabgen.dataplane.nsenter import NETNS_RUN_DIR, entered

MTU = 9500
ROLES = ("s1", "gw1", "gw2", "s2")
ADDR = {
    ("s1", "eth0"): "10.0.1.10/24", ("gw1", "lan0"): "10.0.1.1/24",
    ("gw1", "und0"): "172.12.1.10/24", ("gw2", "und0"): "172.12.1.11/24",
    ("gw2", "lan0"): "10.0.2.1/24", ("s2", "eth0"): "10.0.2.10/24",
}
LINKS = ((("s1", "eth0"), ("gw1", "lan0")), (("gw1", "und0"), ("gw2", "und0")), (("gw2", "lan0"), ("s2", "eth0")))
TUNNEL_ADDR = {"gw1": "1.1.1.1/24", "gw2": "1.1.1.2/24"}
S1, S2 = "10.0.1.10", "10.0.2.10"
CAN_RUN = os.geteuid() == 0 and Path("/dev/net/tun").exists()
UNDERLAY = {"gw1": "172.12.1.10", "gw2": "172.12.1.11"}


@dataclass
class Lab:
    """Names of the lab's namespaces plus everything started in them, for destroy()."""

    prefix: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def run(self, role: str, argv: list[str], timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns(role), *argv], capture_output=True, text=True,
                              timeout=timeout, check=check)

    def popen(self, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(proc)
        return proc

    def ping(self, role: str, dst: str, count: int = 3, size: int = 56, ttl: int | None = None,
             ) -> subprocess.CompletedProcess[str]:
        return ping(self.ns(role), dst, count, size, ttl)

    def bpf_tunnels(self, mode: str, mtu: int | None = None, ttl: int = 0) -> None:
        """tun0 in gw1 and gw2 as BPF tunnel ends (what the VyOS emulation makes with --tunnels bpf)."""
        from clabgen.dataplane import bpf
        program = bpf.object_bytes()
        overhead = {"ipip": 20, "gre": 24}[mode]
        for gw, peer in (("gw1", "gw2"), ("gw2", "gw1")):
            end = bpf.BpfTunnel("tun0", mode, UNDERLAY[gw], UNDERLAY[peer], mtu or MTU - overhead, ttl)
            with entered(self.ns(gw)):
                bpf.create_device(end)
                with IPRoute() as ipr:
                    index = ipr.link_lookup(ifname="tun0")[0]
                    addr, plen = TUNNEL_ADDR[gw].split("/")
                    ipr.addr("add", index=index, address=addr, prefixlen=int(plen))
                    ipr.link("set", index=index, state="up")
                bpf.attach([end], program)

    def tunnel_spec(self, mode: str, mtu: int | None = None) -> dict[str, object]:
        overhead = {"ipip": 20, "gre": 24}[mode]
        return {"tunnels": [
            {"netns": self.ns(gw), "ifname": "tun0", "mode": mode, "local": UNDERLAY[gw], "remote": UNDERLAY[peer],
             "address": TUNNEL_ADDR[gw], "mtu": mtu or MTU - overhead}
            for gw, peer in (("gw1", "gw2"), ("gw2", "gw1"))]}


def ping(ns: str, dst: str, count: int = 3, size: int = 56, ttl: int | None = None,
         ) -> subprocess.CompletedProcess[str]:
    """Debian's iputils ping inside ns; -t sets the TTL the packets leave with."""
    extra = ["-t", str(ttl)] if ttl else []
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", "-s", str(size), *extra, dst]
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30, check=False)


def _sysctl(ns: str, key: str, value: str) -> None:
    with entered(ns):  # /proc/sys/net belongs to the opener's namespace
        Path("/proc/sys", *key.split(".")).write_text(value)


def build(prefix: str | None = None) -> Lab:
    """Namespaces, veths (MTU 9500), addresses, forwarding and default routes on the servers."""
    lab = Lab(prefix or f"clabgen-t-{secrets.token_hex(3)}")
    try:
        for role in ROLES:
            netns.create(lab.ns(role))
        for (ra, ia), (rb, ib) in LINKS:
            with IPRoute(netns=lab.ns(ra)) as ipr:
                ipr.link("add", ifname=ia, kind="veth", mtu=MTU,
                         peer={"ifname": ib, "net_ns_fd": str(NETNS_RUN_DIR / lab.ns(rb)), "mtu": MTU})
        for role in ROLES:
            with IPRoute(netns=lab.ns(role)) as ipr:
                for (r, ifname), cidr in ADDR.items():
                    if r == role:
                        idx = ipr.link_lookup(ifname=ifname)[0]
                        addr, plen = cidr.split("/")
                        ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
                        ipr.link("set", index=idx, state="up")
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
                if role.startswith("s"):
                    ipr.route("add", dst="0.0.0.0/0", gateway="10.0.1.1" if role == "s1" else "10.0.2.1")
        for gw in ("gw1", "gw2"):
            _sysctl(lab.ns(gw), "net.ipv4.ip_forward", "1")
    except BaseException:
        destroy(lab)
        raise
    return lab


def route_lans(lab: Lab, via_tunnel: bool) -> None:
    """Send each gateway's remote LAN through tun0 (tunnel) or straight over the underlay (plain)."""
    for gw, peer_lan, peer in (("gw1", "10.0.2.0/24", "gw2"), ("gw2", "10.0.1.0/24", "gw1")):
        with IPRoute(netns=lab.ns(gw)) as ipr:
            if via_tunnel:
                gateway = TUNNEL_ADDR[peer].split("/")[0]
                ipr.route("replace", dst=peer_lan, gateway=gateway, oif=ipr.link_lookup(ifname="tun0")[0])
            else:
                ipr.route("replace", dst=peer_lan, gateway=UNDERLAY[peer])


def destroy(lab: Lab) -> None:
    """Kill what we started, then remove our namespaces; safe to call twice."""
    for proc in lab.procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lab.procs.clear()
    for role in ROLES:
        if (NETNS_RUN_DIR / lab.ns(role)).exists():
            netns.remove(lab.ns(role))


@dataclass
class Frames:
    """Frames an AF_PACKET socket saw, both directions, Ethernet header included."""

    frames: list[bytes] = field(default_factory=list)


@contextmanager
def capture(ns: str, ifname: str) -> Iterator[Frames]:
    """Record every frame on ns/ifname while the block runs (an AF_PACKET socket, no tcpdump)."""
    eth_p_all = 0x0003
    with entered(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(eth_p_all))
    sock.bind((ifname, eth_p_all))
    sock.settimeout(0.1)
    out = Frames()
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                out.frames.append(sock.recv(65535))
            except TimeoutError:
                continue

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        time.sleep(0.2)
        done.set()
        thread.join()
        sock.close()
