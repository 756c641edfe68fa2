"""Lab lifecycles that go wrong: racing commands, lost state, killed deploys (netns runtime, for real)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clabgen import labops
from clabgen.runtimes import leftovers, state

from ..conftest import run_clabgen
from ..labutil import CHAIN3, lab_name, residue, unique_lab, write_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


def _clabgen(*args: str) -> subprocess.Popen[str]:
    exe = shutil.which("clabgen", path=str(Path(sys.executable).parent)) or "clabgen"
    return subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_deploys_of_one_lab_serialize(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, CHAIN3, tag="c")
    name = lab_name(lab)
    try:
        procs = [_clabgen("deploy", str(lab), "--runtime", "netns") for _ in range(3)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        assert [rc for rc, _, _ in results] == [0, 0, 0], results
        deployed = [out for _, out, _ in results if out.startswith("deployed")]
        assert len(deployed) == 1, results
        assert sum("already deployed" in err for _, _, err in results) == 2, results
        current = state.read(name)
        assert current is not None and current.deployed and current.runtime == "netns"
        assert run_clabgen("verify", str(lab)).returncode == 0
        assert "deployed on netns" in run_clabgen("inspect", str(lab)).stdout
        procs = [_clabgen("destroy", str(lab)) for _ in range(2)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finally:
        labops.destroy(lab)
    assert residue(name) == []
    assert not (state.RUN_DIR / f".{name}.lock").exists()


def test_different_labs_deploy_in_parallel(tmp_path: Path) -> None:
    for i in range(2):
        (tmp_path / str(i)).mkdir()
    labs = [unique_lab(tmp_path / str(i), "ipip") for i in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda lab: labops.deploy(lab, "netns"), labs))
        for lab in labs:
            assert run_clabgen("verify", str(lab)).returncode == 0
    finally:
        for lab in labs:
            labops.destroy(lab)
    assert all(residue(lab_name(lab)) == [] for lab in labs)


def test_destroy_without_the_state_directory_stops_the_dataplane(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "gre")
    name = lab_name(lab)
    labops.deploy(lab, "netns", tunnels="userspace")
    sdir = state.state_dir(name)
    pids = leftovers.dataplanes_of(sdir)
    assert len(pids) == 1
    shutil.rmtree(sdir)
    result = run_clabgen("destroy", str(lab))
    assert result.returncode == 0, result.stderr
    assert f"left-over process {pids[0]}" in result.stderr
    assert not Path(f"/proc/{pids[0]}").exists() or leftovers.dataplanes_of(sdir) == []
    assert residue(name) == []


def test_deploy_after_a_killed_deploy_says_what_is_left(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, CHAIN3, tag="k")
    name = lab_name(lab)
    proc = _clabgen("deploy", str(lab), "--runtime", "netns")
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "created" in line and "namespaces" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = run_clabgen("deploy", str(lab), "--runtime", "netns")
    assert again.returncode == 1
    assert f"lab {name} has a half-finished netns deploy (pid {proc.pid}" in again.stderr
    assert f"clabgen destroy {lab}" in again.stderr and "Traceback" not in again.stderr
    assert residue(name) != []                      # nothing was touched by the refused deploy
    assert run_clabgen("destroy", str(lab)).returncode == 0
    assert residue(name) == []
    assert run_clabgen("deploy", str(lab), "--runtime", "netns").returncode == 0
    labops.destroy(lab)
    assert residue(name) == []


def test_inspect_shows_a_dead_dataplane(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    labops.deploy(lab, "netns", tunnels="userspace")
    try:
        shown = run_clabgen("inspect", str(lab)).stdout
        assert "userspace tunnel dataplane: running (pid" in shown and "2 tunnel ends, C fast path" in shown
        (pid,) = leftovers.dataplanes_of(state.state_dir(lab_name(lab)))
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = run_clabgen("inspect", str(lab)).stdout
        assert "userspace tunnel dataplane: dead (it served 2 tunnel ends)" in shown, shown
        assert '"state": "dead' in run_clabgen("inspect", str(lab), "--json").stdout
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []


def test_verify_json_on_a_lab_not_deployed_is_a_json_error(tmp_path: Path) -> None:
    import json
    lab = unique_lab(tmp_path, "ipip")
    result = run_clabgen("verify", str(lab), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["checks"] == []
    assert f"lab {lab_name(lab)} is not deployed" in report["error"]
