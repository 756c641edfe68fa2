"""The containerlab runtime: command lines, variant topology and inspect parsing (everywhere), and
labs/ipip and labs/gre through the real bin/containerlab (needs it and a Docker engine)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from clabgen import images, labops
from clabgen.errors import RuntimeFailure
from clabgen.runtimes import containerlab as clab
from clabgen.runtimes import state

from ..conftest import LABS, run_clabgen
from ..labutil import lab_name, residue, unique_lab

pytestmark = pytest.mark.containerlab

DATA = Path(__file__).resolve().parents[1] / "data" / "containerlab"


# --- unit tests: no engine, no binary needed ----------------------------------------------------


def test_command_lines() -> None:
    binary, topo = Path("/opt/bin/containerlab"), Path("/run/clabgen/lab1/lab1.clab.yml")
    assert clab.command(binary, "deploy", topo) == ["/opt/bin/containerlab", "deploy", "-t", str(topo)]
    assert clab.command(binary, "inspect", topo) == ["/opt/bin/containerlab", "inspect", "-t", str(topo), "-f", "json"]
    assert clab.command(binary, "destroy", topo) == ["/opt/bin/containerlab", "destroy", "-t", str(topo), "--cleanup"]
    with pytest.raises(ValueError):
        clab.command(binary, "redeploy", topo)


def test_environment_disables_the_version_check_and_keeps_lab_dirs_in_the_state_dir() -> None:
    env = clab.clab_env("lab1", {"PATH": "/usr/bin", "CLAB_VERSION_CHECK": "enable"})
    assert env == {"PATH": "/usr/bin", "CLAB_VERSION_CHECK": "disable",
                   "CLAB_LABDIR_BASE": str(state.state_dir("lab1"))}
    assert clab.variant_path("lab1") == state.state_dir("lab1") / "lab1.clab.yml"


def test_parse_inspect_of_a_captured_sample() -> None:
    text = (DATA / "inspect-ipip.json").read_text()
    nodes = clab.parse_inspect(text, "ipip")
    assert sorted(nodes) == ["gw1", "gw2", "server1", "server2"]
    gw1 = nodes["gw1"]
    assert gw1.container == "clab-ipip-gw1" and gw1.state == "running" and gw1.kind == "linux"
    assert gw1.image.startswith("clabgen/vyos-emu:")
    assert IPv4Network(gw1.mgmt_ipv4, strict=False).subnet_of(clab.MGMT_POOL)
    assert nodes["server1"].image.startswith("clabgen/node:")


def test_parse_inspect_keeps_only_the_lab_and_reads_na_as_empty() -> None:
    data = {"lab1": [{"lab_name": "lab1", "name": "clab-lab1-a", "image": "i", "kind": "linux",
                      "state": "exited", "ipv4_address": "N/A"},
                     {"lab_name": "other", "name": "clab-other-b", "state": "running"}]}
    nodes = clab.parse_inspect(json.dumps(data), "lab1")
    assert list(nodes) == ["a"] and nodes["a"].state == "exited" and nodes["a"].mgmt_ipv4 == ""
    assert clab.parse_inspect(json.dumps({"containers": data["lab1"]}), "lab1")["a"].container == "clab-lab1-a"
    assert clab.parse_inspect("{}", "lab1") == {}
    with pytest.raises(RuntimeFailure, match="no JSON"):
        clab.parse_inspect("time=... level=error msg=boom", "lab1")


def test_exec_failures_from_a_captured_deploy_log() -> None:
    log = (DATA / "deploy-exec-failure.log").read_text()
    assert clab.exec_failures(log) == ['command="ip route replace default via 10.9.9.9" node=server2 rc=2 stdout="" '
                                       'Error: Nexthop has invalid gateway.']
    assert clab.exec_failures("\x1b[31mINFO\x1b[0m Executed command node=a command=\"true\"") == []


def test_variant_topology_maps_images_binds_options_and_mgmt() -> None:
    raw = yaml.safe_load((LABS / "ipip" / "ipip.clab.yml").read_text())
    before = copy.deepcopy(raw)
    mgmt = clab.Mgmt("clab-ipip", "br-ipip", "172.31.200.0/28")
    chosen = {"gw1": "clabgen/vyos-emu:abc", "gw2": "clabgen/vyos-emu:abc",
              "server1": "clabgen/node:def", "server2": "harbor.dayuan1997.com/devops/nettool:0.9"}
    topo, notes = clab.variant_topology(raw, LABS / "ipip", chosen, mgmt, images.CONTAINERLAB_NODE_OPTIONS,
                                        exists=lambda p: p != Path("/lib/modules"))
    assert raw == before, "the lab's own topology data must not change"
    assert topo["name"] == "ipip"
    assert topo["mgmt"] == {"network": "clab-ipip", "bridge": "br-ipip", "ipv4-subnet": "172.31.200.0/28",
                            "ipv6-subnet": "", "external-access": False}
    assert topo["topology"]["defaults"] == images.CONTAINERLAB_NODE_OPTIONS
    nodes = topo["topology"]["nodes"]
    assert {n: v["image"] for n, v in nodes.items()} == chosen
    assert nodes["gw1"]["binds"] == [f"{(LABS / 'ipip').resolve()}/startup-conf/gw1.cfg:/opt/vyatta/etc/config/config.boot"]
    assert notes == [f"{gw}: bind /lib/modules:/lib/modules dropped: /lib/modules does not exist on this host"
                     for gw in ("gw1", "gw2")]
    for n in nodes:   # everything but image and binds as the lab has it
        assert {k: v for k, v in nodes[n].items() if k not in ("image", "binds")} == \
               {k: v for k, v in raw["topology"]["nodes"][n].items() if k not in ("image", "binds")}
    assert topo["topology"]["links"] == raw["topology"]["links"]
    kept, _ = clab.variant_topology(raw, LABS / "ipip", {}, mgmt, {}, exists=lambda p: True)
    assert kept["topology"]["nodes"]["gw1"]["binds"][0] == "/lib/modules:/lib/modules"


def test_mgmt_network_is_per_lab_small_and_free() -> None:
    m = clab.mgmt_for("t1a2b3-ipip", 4)
    assert m.network == "clab-t1a2b3-ipip" and m.bridge == "br-t1a2b3-ipip"
    net = IPv4Network(m.ipv4_subnet)
    assert net.prefixlen == 28 and net.subnet_of(clab.MGMT_POOL)
    assert clab.mgmt_for("t1a2b3-ipip", 4) == m
    other = clab.mgmt_for("t1a2b3-ipip", 4, taken=[net])
    assert not IPv4Network(other.ipv4_subnet).overlaps(net)
    long = clab.mgmt_for("a-very-long-lab-name-indeed", 40)
    assert len(long.bridge) <= 15 and IPv4Network(long.ipv4_subnet).num_addresses == 64
    with pytest.raises(RuntimeFailure, match="no free"):
        clab.mgmt_for("x", 4, taken=[clab.MGMT_POOL])


def test_mgmt_network_lookup_is_exact() -> None:
    class Net:
        def __init__(self, name: str) -> None:
            self.name = name

    class Networks:
        def list(self, names: list[str]) -> list[Net]:   # the engine matches substrings
            return [Net(n) for n in ("clab-ipip", "clab-ipip-vyos14") if names[0] in n]

    class Client:
        networks = Networks()

    assert [n.name for n in clab.mgmt_networks(Client(), "ipip")] == ["clab-ipip"]
    assert clab.mgmt_networks(Client(), "ip") == []


def test_find_binary_prefers_the_environment_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.setenv(clab.BINARY_ENV, str(tmp_path / "bin" / "containerlab"))
    assert clab.find_binary() is None
    local = tmp_path / "bin" / "containerlab"
    local.parent.mkdir()
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    assert clab.find_binary() == local
    on_path = tmp_path / "path" / "containerlab"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.delenv(clab.BINARY_ENV)
    assert clab.find_binary() == on_path


def test_missing_binary_is_a_clear_preflight_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clab, "find_binary", lambda: None)
    with pytest.raises(RuntimeFailure, match="containerlab is not installed") as info:
        _ = clab.ContainerlabRuntime().binary
    assert "make containerlab" in str(info.value)


@pytest.mark.parametrize("binary, engine, chosen", [(True, True, "containerlab"), (False, True, "docker"),
                                                    (True, False, "netns"), (False, False, "netns")])
def test_auto_runtime_choice(binary: bool, engine: bool, chosen: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from clabgen.runtimes import docker

    def connect() -> object:
        if not engine:
            raise RuntimeFailure("no Docker engine answers at unix:///nowhere (DockerException)")
        return object()

    monkeypatch.setattr(clab, "find_binary", lambda: Path("/x/bin/containerlab") if binary else None)
    monkeypatch.setattr(docker, "connect", connect)
    said: list[str] = []
    assert labops.choose_runtime(said.append) == chosen
    assert len(said) == 1 and said[0].startswith(f"runtime auto: {chosen} (")
    if not engine:
        assert "no Docker engine answers" in said[0]


def test_unknown_runtime_lists_auto_too(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match=r"valid: auto, containerlab, docker, netns"):
        labops.deploy(LABS / "ipip", "kubernetes")


# --- the real thing ---------------------------------------------------------------------------------


def _engine() -> Any:
    docker = pytest.importorskip("docker")
    try:
        c = docker.from_env(timeout=30)
        c.ping()
        return c
    except Exception as e:
        pytest.skip(f"no Docker engine answers ({type(e).__name__}); run `make docker-up`")


@pytest.fixture
def client() -> Any:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if clab.find_binary() is None:
        pytest.skip("no containerlab binary ($CLABGEN_CONTAINERLAB or PATH); run `make containerlab`")
    return _engine()


def clab_residue(client: Any, name: str) -> list[str]:
    """What a containerlab lab named `name` could leave: containers, network, bridge, host files."""
    left = [f"container {c.name}" for c in client.containers.list(all=True, filters={"label": f"containerlab={name}"})]
    left += [f"network {n.name}" for n in clab.mgmt_networks(client, name)]
    bridge = clab.mgmt_for(name, 4).bridge
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0:
        left.append(f"bridge {bridge}")
    if f"CLAB-{name}-" in Path("/etc/hosts").read_text():
        left.append("/etc/hosts block")
    if Path(f"/etc/ssh/ssh_config.d/clab-{name}.conf").exists():
        left.append("ssh config")
    return left + residue(name)


@pytest.mark.parametrize("name", ["ipip", "gre"])
def test_deploy_verify_destroy(name: str, client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, name, tag="c")
    lname = lab_name(lab)
    # gre goes through the default (--runtime auto), which must pick containerlab here.
    args = ["deploy", str(lab)] + (["--runtime", "containerlab"] if name == "ipip" else [])
    result = run_clabgen(*args)
    try:
        assert result.returncode == 0, result.stderr
        if name == "gre":
            assert "runtime auto: containerlab" in result.stderr
        assert "dataplane emulated" in result.stderr
        assert "bind /lib/modules:/lib/modules dropped" in result.stderr
        assert (current := state.read(lname)) is not None and current.runtime == "containerlab"
        variant = clab.variant_path(lname)
        assert variant.is_file() and (state.state_dir(lname) / f"clab-{lname}").is_dir()
        assert not (lab / f"clab-{lname}").exists(), "containerlab wrote into the lab directory"
        c = client.containers.get(f"clab-{lname}-gw1")
        assert c.attrs["HostConfig"]["Privileged"] is False
        assert c.labels["clab-topo-file"] == str(variant)
        verified = run_clabgen("verify", str(lab), "--json")
        assert verified.returncode == 0, verified.stdout
        report = json.loads(verified.stdout)
        assert {c["group"] for c in report["checks"]} == {"routes", "tunnel", "ping", "capture"}
        assert all(c["ok"] for c in report["checks"])
        assert "ttl=62" in " ".join(c["detail"] for c in report["checks"] if c["group"] == "ping")
        frame = "122 B" if name == "gre" else "118 B"
        assert frame in next(c["detail"] for c in report["checks"] if c["group"] == "capture")
        info = json.loads(run_clabgen("inspect", str(lab), "--json", check=True).stdout)
        assert info["runtime"] == "containerlab" and {n["state"] for n in info["nodes"].values()} == {"running"}
        assert any(i["name"] == "eth0" for i in info["nodes"]["gw1"]["interfaces"])   # the mgmt interface
        ran = run_clabgen("exec", str(lab), "server1", "--", "ip", "route")
        assert "default via 10.1.5.1 dev net0" in ran.stdout
    finally:
        gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert clab_residue(client, lname) == []
    again = run_clabgen("destroy", str(lab))
    assert again.returncode == 0 and "nothing to destroy" in again.stdout


@pytest.fixture
def deployed(client: Any, tmp_path: Path) -> Iterator[Path]:
    lab = unique_lab(tmp_path, "ipip", tag="c")
    try:
        labops.deploy(lab, "containerlab")
        yield lab
    finally:
        labops.destroy(lab)
    assert clab_residue(client, lab_name(lab)) == []


def test_destroy_without_the_state_dir_still_cleans_up(deployed: Path, client: Any) -> None:
    lname = lab_name(deployed)
    shutil.rmtree(state.state_dir(lname))          # what a reboot does to /run
    removed = labops.destroy(deployed)
    assert any("containerlab lab" in r for r in removed)
    assert clab_residue(client, lname) == []


def test_deploy_twice_says_so(deployed: Path) -> None:
    result = run_clabgen("deploy", str(deployed), "--runtime", "containerlab")
    assert result.returncode == 0 and "already deployed" in result.stderr


def test_a_broken_config_boot_is_refused_before_containerlab_runs(client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="c")
    # gw1 runs the emulator image, which could not parse this: the host parses it first.
    (lab / "startup-conf" / "gw1.cfg").write_text("interfaces {\n    ethernet eth1 {\n")
    result = run_clabgen("deploy", str(lab), "--runtime", "containerlab")
    assert result.returncode == 2, result.stderr
    assert f"{lab}/startup-conf/gw1.cfg:2:1: unbalanced `{{`: `ethernet eth1 {{` is never closed" in result.stderr
    assert "Traceback" not in result.stderr and "containerlab deployed" not in result.stderr
    assert clab_residue(client, lab_name(lab)) == []
    assert state.read(lab_name(lab)) is None


def test_failed_exec_line_fails_the_deploy_and_rolls_back(client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="c")
    topo = next(lab.glob("*.clab.yml"))
    topo.write_text(topo.read_text().replace("ip route replace default via 10.1.8.1", "ip route replace default via 10.9.9.9"))
    result = run_clabgen("deploy", str(lab), "--runtime", "containerlab")
    assert result.returncode == 1
    assert 'exec failed: command="ip route replace default via 10.9.9.9" node=server2' in result.stderr
    assert "Traceback" not in result.stderr
    assert clab_residue(client, lab_name(lab)) == []


def test_interrupted_deploy_rolls_back(client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="c")

    def interrupt(msg: str) -> None:
        if msg.startswith("containerlab deployed"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        labops.deploy(lab, "containerlab", interrupt)
    assert clab_residue(client, lab_name(lab)) == []


def test_foreign_container_is_left_alone(client: Any, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip", tag="c")
    lname = lab_name(lab)
    node = images.ensure_images(client, log=lambda _: None)["node"].name
    foreign = client.containers.create(node, name=f"clab-{lname}-gw1", labels={"owner": "someone-else"})
    try:
        result = run_clabgen("deploy", str(lab), "--runtime", "containerlab")
        assert result.returncode == 1
        assert f"clab-{lname}-gw1 are taken by containers that are not this lab's" in result.stderr
        assert client.containers.get(f"clab-{lname}-gw1").id == foreign.id
        foreign.reload()
        assert foreign.labels["owner"] == "someone-else" and "containerlab" not in foreign.labels
        assert [c.name for c in client.containers.list(all=True) if lname in c.name] == [f"clab-{lname}-gw1"]
        assert not clab.mgmt_networks(client, lname) and not state.read(lname)
    finally:
        foreign.remove(force=True)
    assert clab_residue(client, lname) == []
