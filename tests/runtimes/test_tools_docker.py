"""The tools on a lab running in containers (docker runtime): capture through the container's
network namespace with nothing installed in it, trace --live, shell, status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clabgen import labops

from ..conftest import docker_engine, run_clabgen
from ..labutil import lab_name, residue, unique_lab

pytestmark = pytest.mark.docker

if os.geteuid() != 0 or not shutil.which("tshark"):
    pytest.skip("needs root and tshark (make test installs it)", allow_module_level=True)

CLABGEN = str(Path(sys.executable).parent / "clabgen")


@pytest.fixture(scope="module")
def client() -> Any:
    return docker_engine()


@pytest.fixture(scope="module")
def ipip(client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab = unique_lab(tmp_path_factory.mktemp("dtools"), "ipip", tag="d")
    try:
        labops.deploy(lab, "docker")
        yield lab
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []
    assert not client.containers.list(all=True, filters={"label": f"containerlab={lab_name(lab)}"})


def test_capture_in_a_container_read_by_tshark(ipip: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "gw1.pcapng"
    proc = subprocess.Popen([CLABGEN, "capture", str(ipip), "gw1", "eth2", "-w", str(pcap), "-c", "2",
                             "--filter", "ip proto 4"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while "capturing on" not in proc.stderr.readline() and time.monotonic() < deadline:
        assert proc.poll() is None
    run_clabgen("exec", str(ipip), "server1", "--", "ping", "-n", "-c", "1", "10.1.8.10", check=True)
    assert proc.wait(timeout=30) == 0
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
                             "-e", "icmp.type"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert fields == ["172.12.1.10,10.1.5.10\t172.12.1.11,10.1.8.10\t4,1\t8",
                      "172.12.1.11,10.1.8.10\t172.12.1.10,10.1.5.10\t4,1\t0"]


def test_trace_shell_and_status_on_docker(ipip: Path) -> None:
    live = run_clabgen("trace", str(ipip), "server1", "server2", "--live", "--json")
    assert live.returncode == 0, live.stdout + live.stderr
    assert [(h["answer"]["node"], h["ok"]) for h in json.loads(live.stdout)["live"]["hops"]] == \
        [("gw1", True), ("gw2", True), ("server2", True)]
    shell = subprocess.run([CLABGEN, "shell", str(ipip), "gw2"], input="ip -br addr show tun0\nexit 5\n",
                           capture_output=True, text=True, timeout=60)
    assert shell.returncode == 5 and "1.1.1.2/24" in shell.stdout, shell.stderr
    mine = next(x for x in json.loads(run_clabgen("status", "--json").stdout)["labs"] if x["lab"] == lab_name(ipip))
    assert (mine["runtime"], mine["state"], mine["nodes_up"], mine["nodes"]) == ("docker", "up", 4, 4)
