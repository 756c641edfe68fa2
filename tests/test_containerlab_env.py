"""bin/containerlab deploys, inspects and destroys a two-node lab of clabgen/node on this host.

Needs bin/containerlab (`make containerlab`, patched: docs/containerlab.md), a Docker engine
(`make docker-up`) and the node image (`make image`). Nodes run unprivileged with the host's
capability flags (clabgen.images.CONTAINERLAB_NODE_OPTIONS). The test checks that destroy
leaves nothing behind: containers, /etc/hosts block, ssh config, mgmt network, lab dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from clabgen import images

pytestmark = pytest.mark.containerlab

ROOT = Path(__file__).resolve().parents[1]
CLAB = ROOT / "bin" / "containerlab"


def _env(labdir_base: Path) -> dict[str, str]:
    # No version check (it would HEAD github.com); lab dirs outside the repo.
    return {**os.environ, "CLAB_VERSION_CHECK": "disable", "CLAB_LABDIR_BASE": str(labdir_base)}


def _clab(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLAB), *args], capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture
def client() -> Any:
    if not CLAB.is_file():
        pytest.skip("bin/containerlab is missing; run `make containerlab`")
    version = subprocess.run([str(CLAB), "version"], capture_output=True, text=True,
                             env={**os.environ, "CLAB_VERSION_CHECK": "disable"}).stdout
    if "+clabgen" not in version:
        pytest.skip("bin/containerlab is not the clabgen-patched build; run `make containerlab`")
    docker = pytest.importorskip("docker")
    try:
        c = docker.from_env(timeout=30)
        c.ping()
    except Exception as e:
        pytest.skip(f"no Docker engine answers ({e.__class__.__name__}); run `make docker-up`")
    if not c.images.list(name=images.NODE_REPO):
        pytest.skip("no clabgen/node image; run `make image`")
    return c


def test_two_node_lab_deploys_links_and_cleans_up(client: Any, tmp_path: Path) -> None:
    lab = f"cgt{uuid.uuid4().hex[:6]}"
    topo = tmp_path / f"{lab}.clab.yml"
    topo.write_text(yaml.safe_dump({
        "name": lab,
        # A private mgmt bridge, no firewall rules (external-access: false); the nodes do not
        # join it (network-mode: none), so lab traffic only uses the lab links.
        "mgmt": {"network": f"{lab}-mgmt", "bridge": f"br-{lab}", "ipv4-subnet": "172.31.254.240/28",
                 "ipv6-subnet": "", "external-access": False},
        "topology": {
            "defaults": {**images.CONTAINERLAB_NODE_OPTIONS, "network-mode": "none"},
            "nodes": {"a": {"kind": "linux", "image": "clabgen/node:latest"},
                      "b": {"kind": "linux", "image": "clabgen/node:latest"}},
            "links": [{"endpoints": ["a:eth1", "b:eth1"]}],
        },
    }, sort_keys=False))
    env = _env(tmp_path / "labdirs")
    (tmp_path / "labdirs").mkdir()
    ssh_conf = Path(f"/etc/ssh/ssh_config.d/clab-{lab}.conf")
    try:
        deploy = _clab(["deploy", "-t", str(topo)], env)
        assert deploy.returncode == 0, deploy.stderr + deploy.stdout

        inspect = _clab(["inspect", "-t", str(topo), "-f", "json"], env)
        assert inspect.returncode == 0, inspect.stderr
        nodes = json.loads(inspect.stdout)[lab]
        assert sorted(n["name"] for n in nodes) == [f"clab-{lab}-a", f"clab-{lab}-b"]
        assert {n["state"] for n in nodes} == {"running"}

        a, b = client.containers.get(f"clab-{lab}-a"), client.containers.get(f"clab-{lab}-b")
        assert a.attrs["HostConfig"]["Privileged"] is False
        assert a.exec_run(["ip", "addr", "add", "10.255.0.1/30", "dev", "eth1"]).exit_code == 0
        assert b.exec_run(["ip", "addr", "add", "10.255.0.2/30", "dev", "eth1"]).exit_code == 0
        ping = a.exec_run(["ping", "-c", "2", "-W", "2", "10.255.0.2"])
        assert ping.exit_code == 0, ping.output.decode()
        assert f"CLAB-{lab}-START" in Path("/etc/hosts").read_text()
        assert ssh_conf.exists()
    finally:
        destroy = _clab(["destroy", "-t", str(topo), "--cleanup"], env)
    assert destroy.returncode == 0, destroy.stderr
    assert not client.containers.list(all=True, filters={"label": f"containerlab={lab}"})
    assert f"CLAB-{lab}-" not in Path("/etc/hosts").read_text()
    assert not ssh_conf.exists()
    assert not client.networks.list(names=[f"{lab}-mgmt"])
    assert not (tmp_path / "labdirs" / f"clab-{lab}").exists()
