"""The netns runtime for real: deploy, verify, break things, destroy, and prove nothing is left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import dataplane, labdir, labops
from clabgen.errors import RuntimeFailure
from clabgen.runtimes import state

from ..conftest import run_clabgen
from ..labutil import host_snapshot, lab_name, residue, unique_lab
from .faults import (
    failed_checks,
    test_verify_fails_when_a_route_is_deleted,
    test_verify_fails_when_a_server_address_changes,
    test_verify_fails_when_the_tunnel_mtu_changes,
)

# The fault tests shared by every runtime are collected here too.
SHARED_FAULT_TESTS = (test_verify_fails_when_a_route_is_deleted, test_verify_fails_when_a_server_address_changes,
                      test_verify_fails_when_the_tunnel_mtu_changes)

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Path]:
    lab = unique_lab(tmp_path, "ipip")
    try:
        labops.deploy(lab, "netns")
        yield lab
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []


@pytest.mark.parametrize("name", ["ipip", "ipip-vyos14", "ipip-vyos15", "gre", "hub3"])
def test_deploy_verify_destroy(name: str, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, name)
    lname = lab_name(lab)
    before = host_snapshot()
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    try:
        assert result.returncode == 0, result.stderr
        assert "dataplane emulated" in result.stderr
        verified = run_clabgen("verify", str(lab), "--json", "--junit", str(tmp_path / "junit.xml"))
        assert verified.returncode == 0, verified.stdout
        import json
        report = json.loads(verified.stdout)
        groups = {c["group"] for c in report["checks"]}
        assert groups == {"routes", "tunnel", "ping", "capture"}
        assert all(c["ok"] for c in report["checks"])
        assert "ttl=62" in " ".join(c["detail"] for c in report["checks"] if c["group"] == "ping")
        expected = json.loads((lab / "expected.json").read_text())
        captures = [c["detail"] for c in report["checks"] if c["group"] == "capture"]
        assert len(captures) == len(expected["tunnels"])
        for cap in expected["captures"]:
            assert any(f"{cap['iface']} {cap['underlay_frame_len']} B" in d for d in captures), captures
        assert b"<testsuite" in (tmp_path / "junit.xml").read_bytes()
    finally:
        gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert residue(lname) == []
    assert host_snapshot() == before


def test_verify_fails_when_the_dataplane_is_killed(tmp_path: Path) -> None:
    deployed = unique_lab(tmp_path, "ipip")
    labops.deploy(deployed, "netns", tunnels="userspace")   # auto would pick BPF here: no process
    try:
        _dataplane_killed(deployed)
    finally:
        labops.destroy(deployed)
    assert residue(lab_name(deployed)) == []


def _dataplane_killed(deployed: Path) -> None:
    pid = dataplane.running_pid(state.state_dir(lab_name(deployed)))
    assert pid
    os.kill(pid, signal.SIGKILL)
    failed = failed_checks(deployed)
    assert any(g == "tunnel" and n == "gw1" for g, n, _ in failed), failed
    assert any(g == "ping" and "no reply" in d for g, _, d in failed)


def test_deploy_twice_says_so_and_changes_nothing(deployed: Path) -> None:
    before = labops.inspect(deployed)
    result = run_clabgen("deploy", str(deployed))
    assert result.returncode == 0
    assert "already deployed" in result.stderr
    assert labops.inspect(deployed) == before


def test_failed_deploy_rolls_back(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    topo = next(lab.glob("*.clab.yml"))
    topo.write_text(topo.read_text().replace("ip route replace default via 10.1.8.1", "ip route replace default via 10.9.9.9"))
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    assert result.returncode == 1
    assert "rolled back" in result.stderr or "failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert residue(lab_name(lab)) == []


def test_interrupted_deploy_rolls_back(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")

    def interrupt(msg: str) -> None:
        if "veth" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        labops.deploy(lab, "netns", interrupt)
    assert residue(lab_name(lab)) == []


def test_destroy_is_idempotent_and_cleans_half_deploys(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "gre")
    rendered = labdir.load(lab)
    from clabgen import netlink
    state.write(state.new(rendered.name, "netns", lab, namespaces=(rendered.container("gw1"),)))
    netlink.ns_create(rendered.container("gw1"))
    assert run_clabgen("destroy", str(lab)).returncode == 0
    assert residue(rendered.name) == []
    again = run_clabgen("destroy", str(lab))
    assert again.returncode == 0 and "nothing to destroy" in again.stdout


def test_twenty_cycles_leave_nothing(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    before = host_snapshot()
    for _ in range(20):
        labops.deploy(lab, "netns")
        labops.destroy(lab)
        assert residue(lab_name(lab)) == []
    assert host_snapshot() == before


def test_verify_on_a_lab_not_deployed(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    result = run_clabgen("verify", str(lab))
    assert result.returncode == 1 and "not deployed" in result.stderr
    with pytest.raises(RuntimeFailure):
        labops.verify(lab)


def test_exec_runs_argv_without_a_shell(deployed: Path) -> None:
    result = run_clabgen("exec", str(deployed), "server1", "--", "echo", "$(id)", ";", "true")
    assert result.returncode == 0 and result.stdout.strip() == "$(id) ; true"
    gone = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"clab-{lab_name(deployed)}-server1" in gone


def test_explicit_interface_names_deploy_and_verify(tmp_path: Path) -> None:
    from ..test_plan import EXPLICIT_IFNAMES
    intent = tmp_path / "intent.yml"
    intent.write_text(EXPLICIT_IFNAMES.replace("name: ifn", f"name: t{os.getpid() % 100000}-ifn", 1))
    try:
        assert run_clabgen("deploy", str(intent), "--runtime", "netns").returncode == 0
        _, checks, _ = labops.verify(intent)
        assert [c for c in checks if not c.ok] == []
        assert {c.detail.split(" ")[0] for c in checks if c.group == "capture"} == {"LAN"}
    finally:
        labops.destroy(intent)
    assert residue(lab_name(tmp_path)) == []
