"""Routing protocols on the netns runtime: rendered labs whose config.boot files get `protocols ospf`
or `protocols bgp` by hand (as a user would), deployed with real FRR daemons per gateway; OSPF
reaches Full and BGP Established (asked through vtysh), the kernel routes are FRR's
(`proto ospf metric 20` via the tunnel), and destroy leaves nothing: no process, no FRR file
outside the lab's state directory, no state directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clabgen import labdir, labops, netlink
from clabgen.errors import RuntimeFailure
from clabgen.procs import alive
from clabgen.runtimes import base, leftovers, state
from clabgen.runtimes.netns import NetnsRuntime

from ..conftest import run_clabgen
from ..emu.frr_labs import BGP_14, OSPF_14, SPF, ospf_on_tunnels_12, set_protocols, snapshot
from ..labutil import lab_name, residue, unique_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)
if not os.access("/usr/lib/frr/zebra", os.X_OK) or not shutil.which("vtysh"):
    pytest.skip("needs FRR (make test installs Debian's frr)", allow_module_level=True)

# With 1 s hellos the adjacency is Full within OSPF's MinLSArrival (1 s) of the first router LSA, so
# the neighbor drops the updated one and waits for its retransmission (retransmit-interval, 5 s by
# default in FRR and VyOS; 1 s here, 3 s in 1.2, VyOS's minimum). A 10 s dead interval keeps the
# adjacency up when other work starves the daemons of CPU for a few seconds.
CONVERGE = 40.0
@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """deploy(lab) on netns; afterwards destroy, timed, and prove nothing is left anywhere."""
    labs: list[Path] = []
    before = snapshot()

    def deploy(lab: Path) -> Path:
        labs.append(lab)
        labops.deploy(lab, "netns")
        return lab

    yield deploy
    for lab in labs:
        t0 = time.monotonic()
        labops.destroy(lab)
        assert time.monotonic() - t0 < 3.0, "destroy waited for FRR to shut down"
        assert residue(lab_name(lab)) == []
        assert not state.state_dir(lab_name(lab)).exists()
        name = lab_name(lab)
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        assert [line for line in ps.splitlines() if f"/clabgen/{name}/" in line] == []
    assert snapshot() == before


def vtysh_json(lab: Path, node: str, command: str) -> dict[str, object]:
    return dict(json.loads(base.vtysh(NetnsRuntime(), labdir.load(lab), node, command)))


def wait_for(what: str, check: Callable[[], bool], timeout: float = CONVERGE) -> float:
    """Seconds until check() holds; fails naming `what` after timeout."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what} not within {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - t0


def kernel_route(lab: Path, node: str, dst: str) -> str | None:
    ns = labdir.load(lab).container(node)
    found = [r.text() for r in netlink.routes(ns) if r.dst == dst]
    return found[0] if found else None


def ospf_full(lab: Path, node: str, count: int = 1) -> bool:
    neighbors = vtysh_json(lab, node, "show ip ospf neighbor json").get("neighbors", {})
    assert isinstance(neighbors, dict)
    states = [n.get("nbrState", "") for per_id in neighbors.values() for n in per_id]
    return len(states) == count and all(s.startswith("Full") for s in states)


def ping(lab: Path, src: str, dst: str) -> subprocess.CompletedProcess[str]:
    ns = labdir.load(lab).container(src)
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", dst], capture_output=True, text=True)


def test_ospf_vyos14_full_and_routes_through_the_tunnel(tmp_path: Path, deployed: Callable[[Path], Path]) -> None:
    lab = unique_lab(tmp_path, "ipip-vyos14", "o")
    for gw, lan, rid, n, peer in (("gw1", "10.1.5.0/24", "172.12.1.10", 1, "1.1.1.2"),
                                  ("gw2", "10.1.8.0/24", "172.12.1.11", 2, "1.1.1.1")):
        set_protocols(lab / "startup-conf" / f"{gw}.cfg", OSPF_14 % {"lan": lan, "rid": rid, "n": n, "peer": peer})
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    deployed(lab)   # registered for the destroy checks (already up: deploy is a no-op)
    assert result.returncode == 0, result.stderr
    assert "FRR: zebra, staticd, ospfd" in result.stderr
    wait_for("OSPF Full on gw1", lambda: ospf_full(lab, "gw1"))
    assert ospf_full(lab, "gw2")
    wait_for("gw1's OSPF route to 10.1.8.0/24", lambda: kernel_route(lab, "gw1", "10.1.8.0/24") is not None)
    assert kernel_route(lab, "gw1", "10.1.8.0/24") == "10.1.8.0/24 via 1.1.1.2 dev tun0 proto ospf metric 20"
    wait_for("gw2's OSPF route", lambda: kernel_route(lab, "gw2", "10.1.5.0/24") is not None)
    assert kernel_route(lab, "gw2", "10.1.5.0/24") == "10.1.5.0/24 via 1.1.1.1 dev tun0 proto ospf metric 20"
    # A static route of a config with OSPF goes through FRR's staticd, and looks as VyOS's does.
    assert kernel_route(lab, "gw1", "192.168.1.0/24") == "192.168.1.0/24 via 1.1.1.2 dev tun0 proto static metric 20"
    routes = vtysh_json(lab, "gw1", "show ip route json")
    assert routes["10.1.8.0/24"][0]["protocol"] == "ospf"   # type: ignore[index]
    answer = ping(lab, "server1", "10.1.8.10")
    assert answer.returncode == 0 and "ttl=62" in answer.stdout, answer.stdout
    sdir = state.state_dir(lab_name(lab))
    assert sorted(p.name for p in (sdir / "frr" / "gw1" / "frr").glob("*.vty")) == \
        ["ospfd.vty", "staticd.vty", "zebra.vty"]
    assert (sdir / "frr" / "gw1" / "frr" / "ospfd-gr.json").exists()   # FRR's fixed path, kept in the lab


def test_ospf_vyos12_hub_and_spokes(tmp_path: Path, deployed: Callable[[Path], Path]) -> None:
    """Three gateways, 1.2 syntax (interface `ip ospf`, passive-interface by name): spoke to spoke
    crosses the hub on OSPF routes, over an ipip and a gre tunnel."""
    lab = unique_lab(tmp_path, "hub3", "h")
    sites = {"gw-hub": ("10.1.1.0/24", "172.12.1.10", ["1.1.1.0/30", "1.1.2.0/30"]),
             "gw1": ("10.1.2.0/24", "172.12.1.11", ["1.1.1.0/30"]),
             "gw2": ("10.1.3.0/24", "172.12.1.12", ["1.1.2.0/30"])}
    for gw, (lan, rid, tunnels) in sites.items():
        cfg = lab / "startup-conf" / f"{gw}.cfg"
        ospf_on_tunnels_12(cfg)
        networks = "".join(f"            network {p}\n" for p in [lan, *tunnels])
        set_protocols(cfg, f"protocols {{\n    ospf {{\n        area 0 {{\n{networks}        }}\n"
                           f"        parameters {{\n            router-id {rid}\n        }}\n"
                           f"        passive-interface eth1\n{SPF}    }}\n}}\n")
    deployed(lab)
    wait_for("two Full neighbors on the hub", lambda: ospf_full(lab, "gw-hub", 2))
    wait_for("gw1's route to spoke 2", lambda: kernel_route(lab, "gw1", "10.1.3.0/24") is not None)
    assert kernel_route(lab, "gw1", "10.1.3.0/24") == "10.1.3.0/24 via 1.1.1.1 dev tun0 proto ospf metric 20"
    wait_for("gw2's route to spoke 1", lambda: kernel_route(lab, "gw2", "10.1.2.0/24") is not None)
    answer = ping(lab, "server1", "10.1.3.10")
    assert answer.returncode == 0 and "ttl=61" in answer.stdout, answer.stdout


def test_ebgp_with_bfd_vyos14_established_and_routes(tmp_path: Path, deployed: Callable[[Path], Path]) -> None:
    lab = unique_lab(tmp_path, "ipip-vyos14", "b")
    for gw, lan, rid, asn, peer, peer_as in (("gw1", "10.1.5.0/24", "172.12.1.10", 65001, "1.1.1.2", 65002),
                                             ("gw2", "10.1.8.0/24", "172.12.1.11", 65002, "1.1.1.1", 65001)):
        set_protocols(lab / "startup-conf" / f"{gw}.cfg",
                      BGP_14 % {"lan": lan, "rid": rid, "as": asn, "peer": peer, "peer_as": peer_as})
    deployed(lab)

    def established() -> bool:
        peers = vtysh_json(lab, "gw1", "show bgp summary json").get("ipv4Unicast", {})
        assert isinstance(peers, dict)
        return peers.get("peers", {}).get("1.1.1.2", {}).get("state") == "Established"

    wait_for("BGP Established", established)

    def bfd_up() -> bool:
        peers = json.loads(base.vtysh(NetnsRuntime(), labdir.load(lab), "gw1", "show bfd peers json"))
        return [(p["peer"], p["status"], p["receive-interval"]) for p in peers] == [("1.1.1.2", "up", 100)]

    wait_for("the BFD session", bfd_up)
    wait_for("gw1's BGP route", lambda: kernel_route(lab, "gw1", "10.1.8.0/24") is not None)
    assert kernel_route(lab, "gw1", "10.1.8.0/24") == "10.1.8.0/24 via 1.1.1.2 dev tun0 proto bgp metric 20"
    wait_for("gw2's BGP route", lambda: kernel_route(lab, "gw2", "10.1.5.0/24") is not None)
    assert ping(lab, "server2", "10.1.5.10").returncode == 0


def test_a_gateway_without_routing_protocols_runs_no_frr(tmp_path: Path, deployed: Callable[[Path], Path]) -> None:
    lab = deployed(unique_lab(tmp_path, "ipip-vyos14", "s"))
    with pytest.raises(RuntimeFailure, match="gw1 runs no routing daemons"):
        base.vtysh(NetnsRuntime(), labdir.load(lab), "gw1", "show ip route json")
    assert not (state.state_dir(lab_name(lab)) / "frr").exists()
    # Static routes alone stay netlink calls, installed as VyOS's FRR would.
    assert kernel_route(lab, "gw1", "10.1.8.0/24") == "10.1.8.0/24 via 1.1.1.2 dev tun0 proto static metric 20"


def test_destroy_sweeps_routing_daemons_whose_state_is_gone(tmp_path: Path, deployed: Callable[[Path], Path]) -> None:
    """The daemons are found by namespace, even without pid files, and killed without waiting."""
    lab = unique_lab(tmp_path, "ipip-vyos14", "k")
    set_protocols(lab / "startup-conf" / "gw1.cfg",
                  OSPF_14 % {"lan": "10.1.5.0/24", "rid": "172.12.1.10", "n": 1, "peer": "1.1.1.2"})
    deployed(lab)
    name = lab_name(lab)
    daemons = leftovers.in_namespaces([f"clab-{name}-gw1"])
    assert {Path(f"/proc/{p}/comm").read_text().strip() for p in daemons} == {"zebra", "staticd", "ospfd"}
    shutil.rmtree(state.state_dir(name) / "frr")
    t0 = time.monotonic()
    gone = run_clabgen("destroy", str(lab))
    assert gone.returncode == 0, gone.stderr
    assert time.monotonic() - t0 < 3.0
    assert "3 processes in the lab's namespaces" in gone.stderr
    assert not any(alive(p) for p in daemons)     # a zombie waiting for init to reap it counts as gone


def test_deploy_refuses_before_creating_anything_when_frr_is_missing(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip-vyos14", "m")
    set_protocols(lab / "startup-conf" / "gw2.cfg",
                  OSPF_14 % {"lan": "10.1.8.0/24", "rid": "172.12.1.11", "n": 2, "peer": "1.1.1.1"})
    env = {**os.environ, "CLABGEN_FRR_DIR": str(tmp_path / "no-frr")}
    exe = shutil.which("clabgen", path=str(Path(sys.executable).parent)) or "clabgen"
    result = subprocess.run([exe, "deploy", str(lab), "--runtime", "netns"], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert f"gw2: FRR is not installed ({tmp_path / 'no-frr'}/zebra" in result.stderr
    assert "apt-get install --no-install-recommends frr" in result.stderr
    assert residue(lab_name(lab)) == []
