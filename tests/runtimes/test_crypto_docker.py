"""Encrypted tunnels in containers: labs/wireguard, labs/ipsec-gre and labs/ipsec-policy deploy, verify (handshakes,
SAs, encryption on the wire, MTU) and leave nothing on docker and containerlab; a lab keyed from
files runs from the private copy under the state directory, which destroy removes."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from clabgen.runtimes import state

from ..conftest import docker_engine, run_clabgen
from ..labutil import lab_name, unique_lab
from ..test_crypto_render import keyed_lab
from .test_docker import docker_residue

pytestmark = pytest.mark.docker

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


@pytest.fixture(scope="module")
def client() -> Any:
    return docker_engine()


def _residue(client: Any, runtime: str, name: str) -> list[str]:
    if runtime == "containerlab":
        from .test_containerlab import clab_residue
        return clab_residue(client, name)
    return docker_residue(client, name)


def _cycle(client: Any, lab: Path, runtime: str) -> dict[str, Any]:
    """deploy, verify --json, destroy through the CLI; the verify report. Nothing may be left."""
    name = lab_name(lab)
    deployed = run_clabgen("deploy", str(lab), "--runtime", runtime)
    try:
        assert deployed.returncode == 0, deployed.stderr
        assert (current := state.read(name)) is not None and current.runtime == runtime
        verified = run_clabgen("verify", str(lab), "--json")
        report: dict[str, Any] = json.loads(verified.stdout)
        failed = [f"{c['group']} {c['node']} {c['name']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
        assert verified.returncode == 0 and failed == [], failed
    finally:
        gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert _residue(client, runtime, name) == []
    assert not Path(f"/run/clabgen/{name}").exists()
    return report


RUNTIMES = ["docker", "containerlab"]


def _need_runtime(runtime: str) -> None:
    if runtime == "containerlab":
        from clabgen.runtimes import containerlab as clab
        if clab.find_binary() is None:
            pytest.skip("no containerlab binary ($CLABGEN_CONTAINERLAB or PATH); run `make containerlab`")


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", ["wireguard", "ipsec-gre", "ipsec-policy"])
def test_lab_deploys_verifies_and_leaves_nothing(client: Any, tmp_path: Path, name: str, runtime: str) -> None:
    _need_runtime(runtime)
    lab = unique_lab(tmp_path, name, tag="d" if runtime == "docker" else "c")
    report = _cycle(client, lab, runtime)
    groups = {c["group"] for c in report["checks"]}
    assert {"crypto", "mtu", "capture", "ping"} <= groups
    crypto = [c["detail"] for c in report["checks"] if c["group"] == "crypto"]
    wire = [c["detail"] for c in report["checks"] if c["group"] == "capture"]
    if name == "wireguard":
        assert len(crypto) == 2 and all("handshake with gw" in d for d in crypto)
        assert wire and all("only WireGuard" in d for d in wire)
    else:
        assert len(crypto) == 6 and all("ESTABLISHED" in d and "INSTALLED" in d for d in crypto)
        assert len(wire) == 3 and all("only ESP in UDP 4500" in d for d in wire)
        assert ("routing" in groups) == (name == "ipsec-gre")
    if name == "ipsec-policy":
        assert all(" policies 10.1." in d for d in crypto), crypto


def test_keyed_lab_runs_from_the_private_copy(client: Any, tmp_path: Path) -> None:
    """Keys and PSKs from files: the containers get the filled 0600 copy under the state directory
    (bound in place of the lab's config); the lab's own files keep placeholders; destroy removes it."""
    lab, secrets = keyed_lab(tmp_path, name=f"d{uuid.uuid4().hex[:5]}-keyed")
    name = lab_name(lab)
    before = {p: p.read_bytes() for p in lab.rglob("*") if p.is_file()}
    deployed = run_clabgen("deploy", str(lab), "--runtime", "docker")
    try:
        assert deployed.returncode == 0, deployed.stderr
        for value in secrets.values():
            assert value not in deployed.stdout + deployed.stderr
        copies = state.state_dir(name) / "secrets"
        assert copies.stat().st_mode & 0o077 == 0
        held = sorted(p.name for p in copies.iterdir() if any(v in p.read_text() for v in secrets.values()))
        assert held == ["gw1.cfg", "gw2.cfg", "gw3.cfg"]
        assert all(p.stat().st_mode & 0o077 == 0 for p in copies.iterdir())
        mounts = client.containers.get(f"clab-{name}-gw2").attrs["Mounts"]
        assert any(m["Source"] == str(copies / "gw2.cfg") for m in mounts), mounts
        verified = run_clabgen("verify", str(lab), "--json")
        report = json.loads(verified.stdout)
        assert verified.returncode == 0, [c for c in report["checks"] if not c["ok"]]
        for value in secrets.values():
            assert value not in verified.stdout
    finally:
        gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert docker_residue(client, name) == []
    assert {p: p.read_bytes() for p in lab.rglob("*") if p.is_file()} == before, "a deploy changed the lab's files"
