"""Routing protocols on the docker and containerlab runtimes: the vyos-emu image's boot starts FRR
inside each gateway container (its own /etc/frr and /run/frr); OSPF reaches Full through the same
vtysh helper verify uses, the kernel route is FRR's, and nothing is left once the lab is destroyed."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clabgen import labdir, labops, netlink, runtimes
from clabgen.errors import RuntimeFailure
from clabgen.runtimes import base
from clabgen.runtimes import containerlab as clab

from ..conftest import docker_engine
from ..emu.frr_labs import OSPF_14, set_protocols, snapshot
from ..labutil import lab_name, unique_lab
from .test_containerlab import clab_residue
from .test_docker import docker_residue

pytestmark = pytest.mark.docker

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


@pytest.fixture(scope="module")
def client() -> Any:
    return docker_engine()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0, show: Callable[[], str] = str) -> None:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what} not within {timeout:.0f}s; {show()}")
        time.sleep(0.2)


@pytest.mark.parametrize("runtime", ["docker", "containerlab"])
def test_ospf_in_emulated_gateway_containers(tmp_path: Path, client: Any, runtime: str) -> None:
    if runtime == "containerlab" and clab.find_binary() is None:
        pytest.skip("no containerlab binary ($CLABGEN_CONTAINERLAB or PATH); run `make containerlab`")
    lab = unique_lab(tmp_path, "ipip-vyos14", "od")
    for gw, lan, rid, n, peer in (("gw1", "10.1.5.0/24", "172.12.1.10", 1, "1.1.1.2"),
                                  ("gw2", "10.1.8.0/24", "172.12.1.11", 2, "1.1.1.1")):
        set_protocols(lab / "startup-conf" / f"{gw}.cfg", OSPF_14 % {"lan": lan, "rid": rid, "n": n, "peer": peer})
    before = snapshot()
    notes: list[str] = []
    rt = runtimes.get(runtime)
    try:
        labops.deploy(lab, runtime, notes.append)
        assert any("gw1: vyos-1.4 dataplane emulated" in n and "FRR: zebra, staticd, ospfd" in n for n in notes), notes
        rendered = labdir.load(lab)

        def full() -> bool:
            out = json.loads(base.vtysh(rt, rendered, "gw1", "show ip ospf neighbor json"))
            states = [x["nbrState"] for per_id in out.get("neighbors", {}).values() for x in per_id]
            return states == ["Full/-"]

        def show() -> str:
            gw1 = rt.nodes(rendered)["gw1"]
            return base.vtysh(rt, rendered, "gw1", "show ip ospf neighbor") + \
                gw1.exec(["tail", "-n", "30", "/var/log/frr/ospfd.log"]).stdout

        wait_for("OSPF Full", full, show=show)
        ns = rt.nodes(rendered)["gw1"].netns()
        wait_for("the OSPF route", lambda: any(r.dst == "10.1.8.0/24" for r in netlink.routes(ns)))
        ns2 = rt.nodes(rendered)["gw2"].netns()     # and the way back, on gw2
        wait_for("the OSPF route back", lambda: any(r.dst == "10.1.5.0/24" for r in netlink.routes(ns2)))
        assert [r.text() for r in netlink.routes(ns) if r.dst == "10.1.8.0/24"] == \
            ["10.1.8.0/24 via 1.1.1.2 dev tun0 proto ospf metric 20"]
        assert [r.text() for r in netlink.routes(ns) if r.dst == "192.168.1.0/24"] == \
            ["192.168.1.0/24 via 1.1.1.2 dev tun0 proto static metric 20"]
        ping = rt.nodes(rendered)["server1"].exec(["ping", "-c", "1", "-W", "2", "10.1.8.10"])
        assert ping.returncode == 0 and "ttl=62" in ping.stdout, ping.stdout
        with pytest.raises(RuntimeFailure, match="server1: vtysh"):
            base.vtysh(rt, rendered, "server1", "show ip route json")
    finally:
        labops.destroy(lab)
    assert (docker_residue if runtime == "docker" else clab_residue)(client, lab_name(lab)) == []
    assert snapshot() == before
