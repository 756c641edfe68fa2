"""The docker runtime for real: labs/ipip and labs/gre deploy, verify and leave nothing; faults make
verify name the failing check; a missing engine, a failing image build and a foreign container
holding one of the lab's names fail the deploy cleanly and create nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clabgen import images, labops
from clabgen.errors import RuntimeFailure
from clabgen.runtimes import state

from ..conftest import docker_engine, run_clabgen
from ..labutil import lab_name, residue, unique_lab
from .faults import (
    failed_checks,
    test_verify_fails_when_a_route_is_deleted,
    test_verify_fails_when_a_server_address_changes,
    test_verify_fails_when_the_tunnel_mtu_changes,
)

# The fault tests shared by every runtime are collected here too.
SHARED_FAULT_TESTS = (test_verify_fails_when_a_route_is_deleted, test_verify_fails_when_a_server_address_changes,
                      test_verify_fails_when_the_tunnel_mtu_changes)

pytestmark = pytest.mark.docker

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


@pytest.fixture(scope="module")
def client() -> Any:
    return docker_engine()


def host_veths() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def docker_residue(client: Any, name: str) -> list[str]:
    """Containers of lab `name` (by label or by name), plus the netns/state/process residue."""
    left = {c.name for c in client.containers.list(all=True, filters={"label": f"containerlab={name}"})}
    left |= {c.name for c in client.containers.list(all=True, filters={"name": f"clab-{name}-"})}
    return [f"container {c}" for c in sorted(left)] + residue(name)


@pytest.mark.parametrize("name", ["ipip", "gre"])
def test_deploy_verify_destroy(name: str, client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, name, tag="d")
    lname = lab_name(lab)
    veths = host_veths()
    result = run_clabgen("deploy", str(lab), "--runtime", "docker")
    try:
        assert result.returncode == 0, result.stderr
        assert "dataplane emulated" in result.stderr
        assert (current := state.read(lname)) is not None and current.runtime == "docker"
        verified = run_clabgen("verify", str(lab), "--json")
        assert verified.returncode == 0, verified.stdout
        report = json.loads(verified.stdout)
        assert {c["group"] for c in report["checks"]} == {"routes", "tunnel", "ping", "capture"}
        assert all(c["ok"] for c in report["checks"])
        assert "ttl=62" in " ".join(c["detail"] for c in report["checks"] if c["group"] == "ping")
        frame = "122 B" if name == "gre" else "118 B"
        assert frame in next(c["detail"] for c in report["checks"] if c["group"] == "capture")
        assert host_veths() == veths, "veths must be made between container namespaces, not on the host"
    finally:
        gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert docker_residue(client, lname) == []
    assert host_veths() <= veths
    again = run_clabgen("destroy", str(lab))
    assert again.returncode == 0 and "nothing to destroy" in again.stdout


@pytest.fixture
def deployed(client: Any, tmp_path: Path) -> Iterator[Path]:
    lab = unique_lab(tmp_path, "ipip", tag="d")
    try:
        labops.deploy(lab, "docker", tunnels="userspace")   # auto would pick BPF here: no process to kill
        yield lab
    finally:
        labops.destroy(lab)
    assert docker_residue(client, lab_name(lab)) == []


def test_verify_fails_when_the_dataplane_is_killed(deployed: Path) -> None:
    pid = run_clabgen("exec", str(deployed), "gw1", "--", "cat", "/run/clabgen/emu/dataplane.pid", check=True).stdout.strip()
    assert pid.isdigit()
    run_clabgen("exec", str(deployed), "gw1", "--", "kill", "-9", pid, check=True)
    failed = failed_checks(deployed)
    assert any(g == "tunnel" and n == "gw1" for g, n, _ in failed), failed
    assert not any(g == "tunnel" and n == "gw2" for g, n, _ in failed), failed
    assert any(g == "ping" and "no reply" in d for g, _, d in failed), failed


# --- bad environments: a clear error, nothing created ----------------------------------------------


def test_engine_down_is_a_clear_error(client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="d")
    missing = tmp_path / "no-such-dir" / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{missing}")    # inherited by the CLI below
    result = run_clabgen("deploy", str(lab), "--runtime", "docker")
    assert result.returncode == 1
    assert f"no Docker engine answers at unix://{missing}" in result.stderr
    assert "make docker-up" in result.stderr and "Traceback" not in result.stderr
    assert docker_residue(client, lab_name(lab)) == []


def test_image_build_failure_leaves_nothing(client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="d")
    # A recipe root whose node build script fails: ensure_images really runs and really fails.
    root = tmp_path / "clabgen"
    shutil.copytree(images.PACKAGE_DIR / "recipes", root / "recipes")
    build = root / "recipes" / "node" / "build.sh"
    build.write_text("#!/bin/sh\necho 'E: simulated debootstrap failure' >&2\nexit 3\n")
    build.chmod(0o755)
    monkeypatch.setattr(images, "PACKAGE_DIR", root)
    monkeypatch.setenv("CLABGEN_IMAGE_CACHE", str(tmp_path / "cache"))
    said: list[str] = []
    with pytest.raises(RuntimeFailure, match=r"debootstrap of clabgen/node failed \(exit 3\)") as info:
        labops.deploy(lab, "docker", said.append)
    assert "simulated debootstrap failure" in str(info.value)
    assert docker_residue(client, lab_name(lab)) == []
    assert not state.read(lab_name(lab))


def test_foreign_container_holding_a_name_is_left_alone(client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="d")
    lname = lab_name(lab)
    node = images.ensure_images(client, log=lambda _: None)["node"].name
    foreign = client.containers.create(node, name=f"clab-{lname}-gw1", labels={"owner": "someone-else"})
    try:
        result = run_clabgen("deploy", str(lab), "--runtime", "docker")
        assert result.returncode == 1
        assert f"clab-{lname}-gw1 are taken by containers that are not this lab's; left untouched" in result.stderr
        assert "Traceback" not in result.stderr
        foreign.reload()
        assert client.containers.get(f"clab-{lname}-gw1").id == foreign.id
        assert foreign.labels["owner"] == "someone-else" and foreign.status == "created"
        assert [c.name for c in client.containers.list(all=True, filters={"name": f"clab-{lname}-"})] == [foreign.name]
        assert not state.read(lname)
        # destroy of the lab does not touch it either
        assert run_clabgen("destroy", str(lab)).returncode == 0
        assert client.containers.get(f"clab-{lname}-gw1").id == foreign.id
    finally:
        foreign.remove(force=True)
    assert docker_residue(client, lname) == []


def test_exec_in_a_container_keeps_its_deadline(deployed: Path) -> None:
    import time

    from clabgen import labdir
    rendered = labdir.load(deployed)
    handle = labops.runtime_for(rendered).nodes(rendered)["server1"]
    t0 = time.monotonic()
    result = handle.exec(["sleep", "30"], timeout=1)
    assert result.returncode == 124 and time.monotonic() - t0 < 10
