"""The userspace tunnel in a real lab: s1 -- gw1 == underlay == gw2 -- s2, one dataplane process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from clabgen.dataplane import DataplaneError, kernel_supports, ready_info, running_pid, start, stop, wire
from clabgen.dataplane.nsenter import NETNS_RUN_DIR, entered

from . import lab as L

pytestmark = pytest.mark.netns
ETH = 14
HAS_CC = bool(os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc"))
IMPLS = [pytest.param("c", marks=pytest.mark.skipif(not HAS_CC, reason="no C compiler for the fast path")), "python"]


def _ip_frames(frames: list[bytes], proto: int, src: str) -> list[bytes]:
    return [f for f in frames if f[12:14] == b"\x08\x00" and f[ETH + 9] == proto
            and f[ETH + 12:ETH + 16] == socket.inet_aton(src)]


def _forwarded(ip: bytes) -> bytes:
    """What gw1 makes of a packet it routes: TTL - 1, header checksum redone."""
    out = bytearray(ip)
    out[8] -= 1
    out[10:12] = b"\0\0"
    out[10:12] = struct.pack("!H", wire.checksum(bytes(out[:20])))
    return bytes(out)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_tunnel_carries_pings_like_the_kernel(lab: L.Lab, state_dir: Path, mode: str, impl: str) -> None:
    start(lab.tunnel_spec(mode), state_dir, impl=impl)
    assert ready_info(state_dir)["impl"] == impl
    L.route_lans(lab, via_tunnel=True)
    with L.capture(lab.ns("gw1"), "und0") as und, L.capture(lab.ns("gw1"), "lan0") as lan:
        out = lab.ping("s1", L.S2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.findall(r"ttl=(\d+)", out.stdout) == ["62"] * 3  # decremented once by each gateway
    back = lab.ping("s2", L.S1)
    assert back.returncode == 0 and re.findall(r"ttl=(\d+)", back.stdout) == ["62"] * 3

    proto, overhead = (4, 20) if mode == "ipip" else (47, 24)
    requests = [f[ETH:] for f in _ip_frames(lan.frames, 1, L.S1)]
    outer = _ip_frames(und.frames, proto, L.UNDERLAY["gw1"])
    assert len(requests) == 3 and len(outer) == 3
    for frame, request in zip(outer, requests):
        assert len(frame) == 98 + overhead  # 84-byte IP ping, 98-byte frame on the LAN
        ver, tos, length, _id, frag, ttl, p = struct.unpack_from("!BBHHHBB", frame, ETH)
        assert (ver, tos, length, frag, p) == (0x45, 0, 84 + overhead, 0x4000, proto)  # DF as pmtudisc sets it
        assert _id != 0  # counts up like the kernel tunnel's
        assert ttl == 63  # ttl inherit: the inner TTL after gw1's forwarding decrement
        assert frame[ETH + 16:ETH + 20] == socket.inet_aton(L.UNDERLAY["gw2"])
        assert wire.checksum(frame[ETH:ETH + 20]) == 0
        if mode == "gre":
            assert frame[ETH + 20:ETH + 24] == b"\x00\x00\x08\x00"
        assert frame[ETH + overhead:] == _forwarded(request)  # inner packet untouched by the tunnel


@pytest.mark.parametrize("impl", IMPLS)
def test_bulk_tcp_arrives_intact(lab: L.Lab, state_dir: Path, impl: str) -> None:
    """16 MB s1 -> s2 and back: TSO split at one gateway, GRO coalescing at the other, checksums."""
    start(lab.tunnel_spec("ipip"), state_dir, impl=impl)
    L.route_lans(lab, via_tunnel=True)
    payload = os.urandom(16 << 20)
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
            conn.sendall(hashlib.sha256(got[0]).digest())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with entered(lab.ns("s1")):
        client = socket.create_connection((L.S2, 5001), timeout=20)
    with client, server:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        digest = client.recv(64)
        thread.join(20)
    assert got and len(got[0]) == len(payload) and got[0] == payload
    assert digest == hashlib.sha256(payload).digest()
    stop(state_dir)
    merged = [int(n) for n in re.findall(r"'merged_writes': (\d+)", (state_dir / "dataplane.log").read_text())]
    if impl == "c":  # the offload paths really ran: TSO reads at gw1, coalesced writes at gw2
        assert len(merged) == 4 and merged[0] > 0 and merged[3] > 0, merged


def test_ready_file_stop_and_cleanup(lab: L.Lab, state_dir: Path) -> None:
    pid = start(lab.tunnel_spec("gre", mtu=1400), state_dir)
    info = ready_info(state_dir)
    assert info["pid"] == pid == running_pid(state_dir)
    assert [(t["netns"], t["ifname"], t["mode"], t["mtu"], t["kind"]) for t in info["tunnels"]] == [
        (lab.ns("gw1"), "tun0", "gre", 1400, "userspace"), (lab.ns("gw2"), "tun0", "gre", 1400, "userspace")]
    with IPRoute(netns=lab.ns("gw1")) as ipr:
        (link,) = ipr.get_links(ifname="tun0")
        assert link.get("mtu") == 1400 and link.get("operstate") in ("UP", "UNKNOWN")
        assert [a.get("address") for a in ipr.get_addr(index=link["index"])] == ["1.1.1.1"]
    with pytest.raises(DataplaneError, match="already runs"):
        start(lab.tunnel_spec("gre"), state_dir)
    assert stop(state_dir) is True
    assert stop(state_dir) is False  # idempotent
    assert running_pid(state_dir) is None and not (state_dir / "dataplane.ready").exists()
    for gw in ("gw1", "gw2"):
        with IPRoute(netns=lab.ns(gw)) as ipr:
            assert ipr.link_lookup(ifname="tun0") == []
    assert "exit 0" in (state_dir / "dataplane.log").read_text()


def test_start_failure_raises_with_the_log(lab: L.Lab, state_dir: Path) -> None:
    spec = lab.tunnel_spec("ipip")
    spec["tunnels"][1]["netns"] = "clabgen-t-missing"
    with pytest.raises(DataplaneError, match="No such file or directory"):
        start(spec, state_dir)
    assert running_pid(state_dir) is None
    with IPRoute(netns=lab.ns("gw1")) as ipr:  # the first tunnel was undone
        assert ipr.link_lookup(ifname="tun0") == []


def _tun_rx(lab: L.Lab) -> int:
    with IPRoute(netns=lab.ns("gw1")) as ipr:
        return ipr.get_links(ifname="tun0")[0].get("stats64")["rx_packets"]


def test_only_the_configured_remote_gets_in(lab: L.Lab, state_dir: Path) -> None:
    start(lab.tunnel_spec("ipip"), state_dir)
    with IPRoute(netns=lab.ns("gw2")) as ipr:
        ipr.addr("add", index=ipr.link_lookup(ifname="und0")[0], address="172.12.1.99", prefixlen=24)
    inner = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 7, 0, 64, 1, 0, socket.inet_aton(L.S2),
                                  socket.inet_aton(L.S1)) + b"\x08\x00\xf7\xff\x00\x00\x00\x00")
    inner[10:12] = struct.pack("!H", wire.checksum(bytes(inner[:20])))
    before = _tun_rx(lab)
    with entered(lab.ns("gw2")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    with sock:
        for src in ("172.12.1.99", L.UNDERLAY["gw2"]):  # spoofed remote first, then the real one
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 48, 0, 0x4000, 64, 4, 0, socket.inet_aton(src),
                                socket.inet_aton(L.UNDERLAY["gw1"]))
            sock.sendto(outer + inner, (L.UNDERLAY["gw1"], 0))
            time.sleep(0.2)
            assert _tun_rx(lab) == before + (src == L.UNDERLAY["gw2"])


def test_kernel_supports_probes_in_a_throwaway_namespace() -> None:
    if not L.CAN_RUN:
        pytest.skip("needs root")
    kernel_supports.cache_clear()
    for mode in ("ipip", "gre"):
        assert isinstance(kernel_supports(mode), bool)
    assert not list(NETNS_RUN_DIR.glob("clabgen-probe-*"))
    with pytest.raises(ValueError, match="valid"):
        kernel_supports("vxlan")


def test_auto_falls_back_to_python_without_a_compiler(lab: L.Lab, state_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLABGEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CC", "/bin/false")
    start(lab.tunnel_spec("ipip"), state_dir)
    assert ready_info(state_dir)["impl"] == "python"
    assert "C fast path unavailable" in (state_dir / "dataplane.log").read_text()
    L.route_lans(lab, via_tunnel=True)
    assert lab.ping("s1", L.S2, count=1).returncode == 0


def test_null_netns_is_the_process_own_namespace_and_sigint_stops(lab: L.Lab, tmp_path: Path) -> None:
    """Run the process itself inside gw1 (netns null there) and stop it the way a terminal would."""
    spec = lab.tunnel_spec("gre")
    spec["tunnels"][0]["netns"] = None
    spec_path, state = tmp_path / "spec.json", tmp_path / "state"
    spec_path.write_text(json.dumps(spec))
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = lab.popen("gw1", ["env", f"PYTHONPATH={src}", sys.executable, "-m", "clabgen.dataplane",
                             "--spec", str(spec_path), "--state-dir", str(state)])
    deadline = time.monotonic() + 20
    while ready_info(state) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready_info(state) is not None, (state / "dataplane.log").read_text()
    L.route_lans(lab, via_tunnel=True)
    assert lab.ping("s1", L.S2, count=1).returncode == 0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    assert "got SIGINT" in (state / "dataplane.log").read_text()
    with IPRoute(netns=lab.ns("gw1")) as ipr:
        assert ipr.link_lookup(ifname="tun0") == []


def test_concurrent_starts_spawn_one_process(lab: L.Lab, state_dir: Path) -> None:
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(start(lab.tunnel_spec("ipip"), state_dir))
        except DataplaneError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    pids = [o for o in outcomes if isinstance(o, int)]
    assert len(pids) == 1 and pids[0] == running_pid(state_dir), outcomes
    assert "already runs" in str(next(o for o in outcomes if not isinstance(o, int)))


@pytest.mark.parametrize("impl", IMPLS)
def test_many_tunnel_ends_share_a_few_threads(lab: L.Lab, state_dir: Path, impl: str) -> None:
    """24 tunnels (48 ends, both gateways) run on one thread per CPU, and every one of them forwards."""
    count = 24
    tunnels = []
    for k in range(1, count + 1):
        for gw, host in (("gw1", 1), ("gw2", 2)):
            local, remote = f"172.12.2.{k * 2 + host - 1}", f"172.12.2.{k * 2 + 2 - host}"
            tunnels.append({"netns": lab.ns(gw), "ifname": f"t{k}", "mode": ("ipip", "gre")[k % 2], "local": local,
                            "remote": remote, "address": f"1.2.{k}.{host}/24", "mtu": 1400})
            with IPRoute(netns=lab.ns(gw)) as ipr:
                ipr.addr("add", index=ipr.link_lookup(ifname="und0")[0], address=local, prefixlen=24)
    pid = start({"tunnels": tunnels}, state_dir, impl=impl)
    info = ready_info(state_dir)
    cpus = len(os.sched_getaffinity(0))
    assert info["threads"] == min(cpus, 2 * count)
    assert len(os.listdir(f"/proc/{pid}/task")) == info["threads"] + 1   # and the main thread, which waits
    for k in (1, 2, count // 2, count):
        out = lab.ping("gw1", f"1.2.{k}.2", count=1)
        assert out.returncode == 0, (k, out.stdout + out.stderr)
