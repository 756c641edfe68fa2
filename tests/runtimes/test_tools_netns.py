"""The tools on a deployed lab (netns): trace --live, capture, shell, status; orphans by what is known."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import labops, netlink, status
from clabgen.dataplane import bpf
from clabgen.runtimes import state

from ..conftest import run_clabgen
from ..labutil import lab_name, residue, unique_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (make test installs it)")
CLABGEN = str(Path(sys.executable).parent / "clabgen")


@pytest.fixture(scope="module")
def hub3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab = unique_lab(tmp_path_factory.mktemp("tools"), "hub3")
    try:
        labops.deploy(lab, "netns")
        yield lab
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []


# --- trace --------------------------------------------------------------------------------------

def test_trace_live_matches_hop_for_hop_then_names_the_broken_hop(hub3: Path) -> None:
    live = run_clabgen("trace", str(hub3), "server1", "server2", "--live", "--json")
    assert live.returncode == 0, live.stdout + live.stderr
    report = json.loads(live.stdout)
    assert [(h["hop"], h["predicted"], h["answer"]["node"], h["answer"]["kind"], h["ok"])
            for h in report["live"]["hops"]] == [
        (1, ["gw1"], "gw1", "exceeded", True), (2, ["gw-hub"], "gw-hub", "exceeded", True),
        (3, ["gw2"], "gw2", "exceeded", True), (4, ["server2"], "server2", "reply", True)]
    plain = run_clabgen("trace", str(hub3), "server1", "server2", "--live")
    assert plain.returncode == 0 and "the live path matches the prediction hop for hop (4 hops)" in plain.stdout
    # a route deleted on the hub: the live trace stops there, and the hop is named
    run_clabgen("exec", str(hub3), "gw-hub", "--", "ip", "route", "del", "10.1.3.0/24", check=True)
    try:
        broken = run_clabgen("trace", str(hub3), "server1", "server2", "--live")
        assert broken.returncode == 1, broken.stdout
        assert "2\tgw-hub\tgw-hub 1.1.1.1\tnetwork unreachable\tDIFFERS" in broken.stdout
        assert broken.stdout.rstrip().endswith("hop 2 differs: predicted gw-hub to forward, but it says: "
                                               "network unreachable")
    finally:
        run_clabgen("exec", str(hub3), "gw-hub", "--", "ip", "route", "add", "10.1.3.0/24", "via", "1.1.2.2",
                    "dev", "tun1", "proto", "static", "metric", "20", check=True)


# --- capture ------------------------------------------------------------------------------------

def _ping(lab: Path, src: str, dst: str, count: int = 2) -> None:
    run_clabgen("exec", str(lab), src, "--", "ping", "-n", "-c", str(count), "-i", "0.2", dst, check=True)


def _started(proc: subprocess.Popen[str]) -> None:
    """Wait for the capture's own line saying the socket is open."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "capturing on" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"capture exited early: {proc.returncode}")
    raise AssertionError("capture did not start")


@needs_tshark
def test_capture_pcap_opened_by_tshark_shows_outer_ipip_and_inner_icmp(hub3: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "gw1-eth2.pcapng"
    proc = subprocess.Popen([CLABGEN, "capture", str(hub3), "gw1", "eth2", "-w", str(pcap), "-c", "4",
                             "--filter", "ip proto 4"], stderr=subprocess.PIPE, text=True)
    _started(proc)
    _ping(hub3, "server1", "10.1.1.10")            # spoke1 -> hub: the ipip tunnel gw1 <-> gw-hub
    assert proc.wait(timeout=30) == 0
    assert "4 packets" in (proc.stderr.read() if proc.stderr else "")
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
                             "-e", "icmp.type"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert fields[:2] == ["172.12.1.11,10.1.2.10\t172.12.1.10,10.1.1.10\t4,1\t8",
                          "172.12.1.10,10.1.1.10\t172.12.1.11,10.1.2.10\t4,1\t0"]
    info = subprocess.run(["capinfos", "-t", "-E", str(pcap)], capture_output=True, text=True).stdout
    assert "pcapng" in info and "Ethernet" in info


def test_capture_decode_prints_outer_and_inner_headers(hub3: Path) -> None:
    if not (shutil.which("tcpdump") or shutil.which("tshark")):
        pytest.skip("needs tcpdump or tshark")
    proc = subprocess.Popen([CLABGEN, "capture", str(hub3), "gw2", "eth2", "-c", "2", "--filter", "ip proto 47"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _started(proc)
    _ping(hub3, "server2", "10.1.1.10", count=1)    # spoke2 -> hub: gre
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 2, out
    if shutil.which("tcpdump"):
        assert "IP 172.12.1.12 > 172.12.1.10: GREv0, length 88: IP 10.1.3.10 > 10.1.1.10: ICMP echo request" in lines[0]
        assert "IP 172.12.1.10 > 172.12.1.12: GREv0, length 88: IP 10.1.1.10 > 10.1.3.10: ICMP echo reply" in lines[1]


@needs_tshark
def test_ctrl_c_ends_a_capture_and_keeps_what_it_has(hub3: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "tun0.pcapng"
    proc = subprocess.Popen([CLABGEN, "capture", str(hub3), "gw-hub", "tun0", "-w", str(pcap)],
                            stderr=subprocess.PIPE, text=True)
    _started(proc)
    _ping(hub3, "server1", "10.1.1.10")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    tail = proc.stderr.read() if proc.stderr else ""
    # 84-byte pings, raw IP on a kernel or userspace tunnel device, Ethernet-framed on a BPF one (a veth,
    # which shows what it sends too while a capture holds it)
    framing = 14 if "tun0" in bpf.tunnels_in(f"clab-{lab_name(hub3)}-gw-hub") else 0
    assert f"4 packets ({4 * (84 + framing)} bytes) captured to" in tail and "stopped by Ctrl-C" in tail
    assert "Traceback" not in tail
    lines = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.ttl"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    # raw IP on the tunnel device; each way one router (gw1, gw-hub) took one TTL
    assert lines == ["10.1.2.10\t10.1.1.10\t63", "10.1.1.10\t10.1.2.10\t63"] * 2


def test_capture_bad_input(hub3: Path) -> None:
    for argv, message in (
            (["gw1", "eth9", "-c", "1"], "no interface 'eth9' on gw1 (interfaces: lo, eth1, eth2, "),
            (["gw9", "eth2"], "no node 'gw9' in lab"),
            (["gw1", "eth2", "--filter", "ip prto 4"], "--filter 'ip prto 4': can't parse filter expression"),
            (["gw1", "eth2", "-c", "0"], "--count 0: give 1 or more")):
        result = run_clabgen("capture", str(hub3), *argv)
        assert result.returncode in (1, 2) and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# --- shell and status ---------------------------------------------------------------------------

def test_shell_runs_in_the_node(hub3: Path) -> None:
    result = subprocess.run([CLABGEN, "shell", str(hub3), "gw-hub"], input="ip -br addr show tun1\nip netns identify\nexit 7\n",
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 7, result.stderr
    assert result.stdout.split()[0].split("@")[0] == "tun1" and "1.1.2.1/30" in result.stdout   # tun1@tun1-bpf: BPF
    assert result.stdout.splitlines()[1] == f"clab-{lab_name(hub3)}-gw-hub"


def test_status_lists_the_lab_with_its_health(hub3: Path) -> None:
    result = run_clabgen("status", "--json")
    assert result.returncode == 0, result.stderr
    mine = next(x for x in json.loads(result.stdout)["labs"] if x["lab"] == lab_name(hub3))
    assert (mine["runtime"], mine["state"], mine["nodes_up"], mine["nodes"]) == ("netns", "up", 7, 7)
    assert mine["lab_dir"] == str(hub3) and mine["lab_dir_exists"]
    # hub3 has 4 tunnel ends; which backend runs them depends on the kernel (auto)
    assert any(h.startswith("dataplane running") or h in ("kernel tunnels", "BPF tunnels (4 tunnel ends, no process)")
               for h in mine["health"]), mine["health"]
    plain = run_clabgen("status")
    row = next(line for line in plain.stdout.splitlines() if line.startswith(lab_name(hub3) + "\t"))
    assert row.split("\t")[1:5] == ["netns", "up", "7/7", row.split("\t")[4]]


def test_orphans_are_grouped_by_veth_not_by_name(tmp_path: Path) -> None:
    """Lab `tX` is recorded; namespaces of `tX-vyos14` (same prefix) are not its, and without any
    record the two sets are two groups, each with its own guessed name."""
    base = f"o{uuid.uuid4().hex[:5]}"
    mine = [f"clab-{base}-gw1", f"clab-{base}-gw2"]
    other = [f"clab-{base}-vyos14-gw1", f"clab-{base}-vyos14-gw2"]
    try:
        for a, b in (mine, other):
            netlink.ns_create(a)
            netlink.ns_create(b)
            netlink.veth(a, "eth2", b, "eth2", 1500)
        state.write(state.new(base, "netns", tmp_path, namespaces=tuple(mine), userspace_tunnels=2))
        state.mark_deployed(state.read(base))  # type: ignore[arg-type]
        found = status.collect()
        lab = next(x for x in found.labs if x.lab == base)
        # its namespaces are there, but the userspace dataplane it recorded is not running
        assert (lab.nodes_up, lab.nodes, lab.state) == (2, 2, "degraded")
        assert lab.health == ("dataplane DEAD (it served 2 tunnel ends)",)
        assert lab.clean == (f"clabgen destroy {tmp_path}",)
        groups = [o for o in found.orphans if o.kind == "netns" and any(base in n for n in o.names)]
        assert [(o.names, o.guess) for o in groups] == [(tuple(other), f"{base}-vyos14")]
        assert groups[0].clean[0].startswith(f"for ns in {other[0]} {other[1]}; do ip netns pids")
        state.remove(base)
        groups = [o for o in status.collect().orphans if o.kind == "netns" and any(base in n for n in o.names)]
        assert sorted((o.names, o.guess) for o in groups) == [(tuple(mine), base), (tuple(other), f"{base}-vyos14")]
    finally:
        state.remove(base)
        for ns in mine + other:
            netlink.ns_delete(ns)


def test_trace_follows_a_fault_scenario_on_ospf(tmp_path: Path) -> None:
    """OSPF over the tunnels (real FRR): with s1-hub1 down the prediction is the scenario's, via hub2,
    and the live path agrees with it hop for hop."""
    if not os.access("/usr/lib/frr/zebra", os.X_OK) or not shutil.which("vtysh"):
        pytest.skip("needs FRR (make test installs Debian's frr)")
    lab = unique_lab(tmp_path, "ospf-dualhub")
    try:
        labops.deploy(lab, "netns")
        assert run_clabgen("verify", str(lab)).returncode == 0     # waits for OSPF to converge
        before = json.loads(run_clabgen("trace", str(lab), "host1", "host3", "--live", "--json").stdout)
        assert [h["answer"]["node"] for h in before["live"]["hops"]] == ["spoke1", "hub1", "spoke3", "host3"]
        assert run_clabgen("fault", str(lab), "down", "s1-hub1").returncode == 0
        assert run_clabgen("verify", str(lab)).returncode == 0     # converged on the scenario's tables
        after = run_clabgen("trace", str(lab), "host1", "host3", "--live", "--json")
        report = json.loads(after.stdout)
        assert after.returncode == 0 and report["faults"] == ["tunnel s1-hub1 down"], after.stdout
        assert [s["node"] for s in report["paths"][0]["stops"]] == ["host1", "spoke1", "hub2", "spoke3", "host3"]
        assert all(h["ok"] for h in report["live"]["hops"]) and len(report["live"]["hops"]) == 4
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []
