"""Dynamic routing end to end with real FRR: the checked-in routing labs and `routing: ospf|bgp`
substituted into every multi-site intent are rendered (oracle-clean), deployed on netns, and verified
against the plan's prediction, before and after faults; docker runs both routing labs too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import labops
from clabgen.contract import LabContract

from ..conftest import LABS, ORACLES
from ..labutil import lab_name, residue, write_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)
if not os.access("/usr/lib/frr/zebra", os.X_OK) or not shutil.which("vtysh"):
    pytest.skip("needs FRR (make test installs Debian's frr)", allow_module_level=True)

MULTI_SITE = ["ipip", "ipip-vyos14", "ipip-vyos15", "gre", "hub3"]


def _failed(lab: Path) -> list[str]:
    _, checks, _ = labops.verify(lab, wait=60)
    return [f"{c.group} {c.node} {c.name}: {c.detail}" for c in checks if not c.ok]


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[list[Path]]:
    labs: list[Path] = []
    yield labs
    for lab in labs:
        labops.destroy(lab)
        assert residue(lab_name(lab)) == []


def _oracle_clean(lab: Path) -> None:
    if not (ORACLES / "vyos" / "vyos_syntax.py").is_file():
        return
    for cfg in sorted((lab / "startup-conf").glob("*.cfg")):
        release = re.search(r"Release version: (\d\.\d)", cfg.read_text())
        assert release, cfg
        result = subprocess.run([sys.executable, str(ORACLES / "vyos" / "vyos_syntax.py"), "--release",
                                 release.group(1), "--strict", str(cfg), str(cfg.with_suffix(".set"))],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["ospf-dualhub", "bgp-hubspoke"])
def test_routing_lab_predicted_before_and_after_faults(name: str, tmp_path: Path, deployed: list[Path]) -> None:
    lab = write_lab(tmp_path, (LABS / name / "intent.yml").read_text(), tag="r")
    deployed.append(lab)
    labops.deploy(lab, "netns")
    assert _failed(lab) == []
    contract = LabContract.load(lab / "expected.json")
    tunnel = contract.tunnels[0].name
    gateway = contract.tunnels[0].ends[1].node       # a hub in both labs: its underlay cut reroutes or isolates
    for target in (tunnel, f"{gateway}:underlay"):
        labops.fault(lab, "down", target)
        assert _failed(lab) == [], target
        labops.fault(lab, "up", target)
        assert _failed(lab) == [], f"after {target} up"


@pytest.mark.parametrize("routing", ["ospf", "bgp"])
@pytest.mark.parametrize("name", MULTI_SITE)
def test_routing_substituted_into_each_multi_site_intent(name: str, routing: str, tmp_path: Path,
                                                         deployed: list[Path]) -> None:
    text = (LABS / name / "intent.yml").read_text()
    text, count = re.subn(r"^routing: .*$", f"routing: {routing}", text, flags=re.M)
    if not count:
        text += f"routing: {routing}\n"
    lab = write_lab(tmp_path, text, tag="s")
    _oracle_clean(lab)
    contract = LabContract.load(lab / "expected.json")
    assert contract.routing == routing and contract.adjacencies
    deployed.append(lab)
    labops.deploy(lab, "netns")
    assert _failed(lab) == []


@pytest.mark.parametrize("name, tunnel", [("ospf-dualhub", "s1-hub1"), ("bgp-hubspoke", "hub-west-gre")])
def test_routing_lab_on_docker(name: str, tunnel: str, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env(timeout=10).ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine answers ({type(exc).__name__}); run `make docker-up`")
    lab = write_lab(tmp_path, (LABS / name / "intent.yml").read_text(), tag="d")
    labops.deploy(lab, "docker")
    try:
        assert _failed(lab) == []
        labops.fault(lab, "down", tunnel)
        assert _failed(lab) == []
    finally:
        labops.destroy(lab)


@pytest.mark.parametrize("name", ["ospf-dualhub", "bgp-hubspoke"])
def test_every_fault_scenario_is_predicted(name: str, tmp_path: Path, deployed: list[Path]) -> None:
    """Each single fault the contract predicts (every tunnel, every underlay link): down, verify against
    its prediction, up, verify the fault-free prediction again."""
    lab = write_lab(tmp_path, (LABS / name / "intent.yml").read_text(), tag="a")
    deployed.append(lab)
    labops.deploy(lab, "netns")
    assert _failed(lab) == []
    contract = LabContract.load(lab / "expected.json")
    targets = [t.name for t in contract.tunnels] + [f"{n.name}:underlay" for n in contract.nodes if n.role == "gateway"]
    assert len(targets) == len(contract.scenarios)
    for target in targets:
        labops.fault(lab, "down", target)
        assert _failed(lab) == [], target
        labops.fault(lab, "up", target)
    assert _failed(lab) == []
