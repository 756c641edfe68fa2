"""Every checked-in lab with BPF tunnels (`clabgen deploy --tunnels bpf`), on netns and docker:
verify passes (routing labs with real FRR), TCP crosses a hub between two BPF tunnels, a broken
BPF tunnel fails verify, and destroy leaves nothing (namespaces, programs, host tc state).
One deploy per lab: the checks that need a particular lab run on its deploy (EXTRA)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clabgen import labdir, labops, runtimes
from clabgen.dataplane import bpf
from clabgen.dataplane.bpf import libbpf, source
from clabgen.emu import crypto
from clabgen.verify import verify

from ..conftest import LABS, run_clabgen
from ..labutil import host_snapshot, lab_name, residue, unique_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)
WHY_NOT = bpf.unavailable("ipip")
if WHY_NOT:
    pytest.skip(f"BPF tunnels unavailable here: {WHY_NOT}", allow_module_level=True)
HAS_FRR = os.access("/usr/lib/frr/zebra", os.X_OK) and bool(shutil.which("vtysh"))


def _types(lab: Path) -> set[str]:
    """Its tunnels' types; a policy-based IPsec tunnel has no interface, so no BPF tunnel either."""
    return {t["type"] for t in json.loads((lab / "expected.json").read_text())["tunnels"] if not t.get("policy")}


def _labs(refused: bool = False) -> list[object]:
    """Labs whose tunnels the BPF tunnel carries (ipip, gre); with refused: those it must refuse
    (IPsec protects their GRE: the program would send it around ESP). Others (WireGuard) are
    not its business and are listed as skipped, with the reason."""
    out: list[object] = []
    for intent in sorted(LABS.glob("*/intent.yml")):
        types = _types(intent.parent)
        carried = bool(types) and all(source.type_index(t) is not None for t in types)
        if refused != ("ipsec" in types):
            continue
        routing = "routing:" in intent.read_text()
        marks = [pytest.mark.skipif(routing and not HAS_FRR and not refused,
                                    reason="needs FRR (make test installs Debian's frr)")]
        if not carried and not refused:
            marks.append(pytest.mark.skip(reason=f"no tunnel the BPF tunnel carries ({', '.join(sorted(types)) or 'none'})"))
        out.append(pytest.param(intent.parent.name, marks=marks))
    return out


def _exec(ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def _namespaces(lab: Path) -> list[str]:
    prefix = f"clab-{lab_name(lab)}-"
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


def _host_tc() -> list[tuple[str, str]]:
    """clsact/ingress qdiscs in the host namespace: a lab must never put its programs there."""
    out = subprocess.run(["tc", "-j", "qdisc", "show"], capture_output=True, text=True).stdout
    return sorted((q["dev"], q["kind"]) for q in json.loads(out or "[]") if q.get("kind") in ("clsact", "ingress"))


def _unloaded(programs: set[int], within: float = 20.0) -> set[int]:
    """The programs the kernel still holds after `within` s (a namespace's devices go asynchronously)."""
    deadline = time.monotonic() + within
    left = {p for p in programs if libbpf.prog_loaded(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {p for p in left if libbpf.prog_loaded(p)}
    return left


def _tcp_crosses_the_hub(lab: Path) -> None:
    """hub3: server1 -> server2 goes spoke -> hub -> spoke, unwrapped and wrapped again at the hub.
    A 64 KB TCP packet keeps the kernel's marks from the first tunnel; the hub's tunnel device offers
    no tunnel segmentation, so the kernel splits it there and each piece is wrapped on its own."""
    rendered = labdir.load(lab)
    dst = next(i.address for i in rendered.contract.node("server2").interfaces if i.address)
    assert dst
    server = subprocess.Popen(["ip", "netns", "exec", rendered.container("server2"), "iperf3", "-s", "-1", "-B",
                               dst.split("/")[0]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        run = _exec(rendered.container("server1"), "iperf3", "-c", dst.split("/")[0], "-t", "3", "-J")
    finally:
        server.kill()
        server.wait()
    assert run.returncode == 0, run.stdout[-500:] + run.stderr
    end = json.loads(run.stdout)["end"]
    assert end["sum_received"]["bytes"] > 50 << 20, end["sum_received"]   # not a trickle of retries
    ends = bpf.tunnels_in(rendered.container("gw-hub"))
    assert len(ends) == 2 and all(e.sent > 1000 and e.received > 1000 for e in ends.values()), ends


def _verify_fails_without_a_program(lab: Path) -> None:
    """Last on its lab (it breaks the tunnel): without its encap filters (tun0's egress, and the
    peer's ingress that wraps what egress lets through) the tunnel end and its pings fail."""
    gw1 = labdir.load(lab).container("gw1")
    for dev, hook in (("tun0", "egress"), (bpf.peer_name("tun0"), "ingress")):
        removed = _exec(gw1, "tc", "filter", "del", "dev", dev, hook)
        assert removed.returncode == 0, removed.stderr
    report = json.loads(run_clabgen("verify", str(lab), "--json").stdout)
    failed = {(c["group"], c["node"]): c["detail"] for c in report["checks"] if not c["ok"]}
    assert ("tunnel", "gw1") in failed and "no userspace tunnel serves it" in failed[("tunnel", "gw1")]
    assert any(g == "ping" for g, _ in failed), failed


# Checks that need a deployed lab ride on that lab's deploy (one deploy per lab keeps the file short
# to run); each runs after verify passed, in order, before destroy.
EXTRA: dict[str, list[Callable[[Path], None]]] = {
    "hub3": [_tcp_crosses_the_hub] if shutil.which("iperf3") else [],
    "ipip": [_verify_fails_without_a_program],
}


@pytest.mark.parametrize("name", _labs())
def test_every_lab_verifies_with_bpf_tunnels(name: str, tmp_path: Path) -> None:
    """deploy --tunnels bpf, verify (every check), inspect, destroy; then nothing of it is left: no
    namespace, state or process, no program in the kernel, nothing on the host's links or tc."""
    lab = unique_lab(tmp_path, name, "bpf")
    before, tc_before = host_snapshot(), _host_tc()
    programs: set[int] = set()
    deployed = run_clabgen("deploy", str(lab), "--runtime", "netns", "--tunnels", "bpf")
    try:
        assert deployed.returncode == 0, deployed.stderr
        assert "(bpf " in deployed.stderr and "userspace" not in deployed.stderr, deployed.stderr
        assert "BPF tunnels:" in deployed.stderr
        gateways = [ns for ns in _namespaces(lab) if bpf.tunnels_in(ns)]
        per_ns = {ns: bpf.program_ids(ns) for ns in gateways}
        programs = set().union(*per_ns.values())
        assert gateways and all(len(ids) == 2 for ids in per_ns.values()), per_ns   # one load per namespace
        verified = run_clabgen("verify", str(lab), "--json", "--wait", "60")
        report = json.loads(verified.stdout)
        failed = [c for c in report["checks"] if not c["ok"]]
        assert verified.returncode == 0 and not failed, failed
        tunnels = [c["detail"] for c in report["checks"] if c["group"] == "tunnel"]
        assert tunnels and all(d.startswith("bpf ") for d in tunnels), tunnels
        shown = run_clabgen("inspect", str(lab)).stdout
        assert f"BPF tunnels: {len(tunnels)} tunnel ends" in shown, shown
        for check in EXTRA.get(name, []):
            check(lab)
    finally:
        gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert residue(lab_name(lab)) == []
    assert _unloaded(programs) == set(), "BPF programs outlived the lab"
    assert host_snapshot() == before
    assert _host_tc() == tc_before


@pytest.mark.parametrize("name", _labs(refused=True))
def test_bpf_refuses_tunnels_ipsec_protects(name: str, tmp_path: Path) -> None:
    """Forced BPF on a lab whose GRE IPsec protects: the deploy fails before anything runs, with
    the reason, and leaves nothing (`--tunnels auto` gives such tunnels the userspace dataplane)."""
    lab = unique_lab(tmp_path, name, "bpf")
    before = host_snapshot()
    deployed = run_clabgen("deploy", str(lab), "--runtime", "netns", "--tunnels", "bpf")
    try:
        assert deployed.returncode != 0, deployed.stderr
        assert "the BPF tunnel cannot carry a tunnel IPsec protects" in deployed.stderr, deployed.stderr
    finally:
        run_clabgen("destroy", str(lab))
    assert residue(lab_name(lab)) == []
    assert host_snapshot() == before


def _engine() -> bool:
    try:
        import docker
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _engine(), reason="no Docker engine answers (make docker-up)")
@pytest.mark.skipif(crypto.wireguard_go() is None, reason="the gateway image carries wireguard-go: make wireguard-go")
def test_docker_gateways_run_bpf_tunnels(tmp_path: Path) -> None:
    """The emulator in the container has no compiler: it loads the program the host built."""
    lab = unique_lab(tmp_path, "gre", "bpf")
    deployed = run_clabgen("deploy", str(lab), "--runtime", "docker")
    try:
        assert deployed.returncode == 0, deployed.stderr
        assert deployed.stderr.count("tun0 (bpf gre)") == 2, deployed.stderr
        verified = run_clabgen("verify", str(lab), "--json")
        report = json.loads(verified.stdout)
        assert verified.returncode == 0, [c for c in report["checks"] if not c["ok"]]
        tunnels = [c["detail"] for c in report["checks"] if c["group"] == "tunnel"]
        assert len(tunnels) == 2 and all(d.startswith("bpf gre") for d in tunnels), tunnels
    finally:
        run_clabgen("destroy", str(lab))
    assert residue(lab_name(lab)) == []


def test_verify_in_process_leaves_no_namespace_alive(tmp_path: Path) -> None:
    """A program that deploys, verifies and destroys in one process (a test, a notebook): verify's
    sockets, opened from worker threads inside the lab's namespaces, must not keep a namespace (and
    the BPF programs on its devices) alive once the lab is destroyed."""
    lab = unique_lab(tmp_path, "hub3", "bpfin")
    rendered = labdir.load(lab)
    labops.deploy(lab, "netns", tunnels="bpf")
    try:
        programs = set().union(*(bpf.program_ids(ns) for ns in _namespaces(lab) if bpf.tunnels_in(ns)))
        assert programs
        checks = verify(rendered, runtimes.get("netns"))
        assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    finally:
        labops.destroy(lab)
    assert _unloaded(programs) == set(), "a namespace of the destroyed lab is still held by this process"
