"""`clabgen trace` predictions: from the lab contract, hop by hop, agreeing with the plan's own walks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clabgen import intent, plan, trace
from clabgen.contract import LabContract

from .conftest import LABS, lab_dirs, run_clabgen


@pytest.mark.parametrize("lab", lab_dirs(), ids=lambda p: p.name)
def test_contract_paths_are_the_plans_paths(lab: Path) -> None:
    """Every server pair: the same nodes in the same order as plan.traces, TTL 64 minus the routers."""
    contract = LabContract.load(lab / "expected.json")
    p = plan.build(intent.read_lab(lab / "intent.yml"))
    for a in p.servers:
        for b in p.servers:
            if a is b or b.address is None:
                continue
            want = {tuple(dict.fromkeys(h.node for h in hops)) for hops, _ in plan.traces(p, a.name, b.address)}
            got = trace.predict(contract, a.name, b.address)
            assert {tuple(s.node for s in path.stops) for path in got if path.arrives} == want
            for path in got:
                assert path.stops[-1].ttl == trace.INITIAL_TTL - path.routers
                assert [s.hop for s in path.stops] == list(range(len(path.stops)))


def test_hub3_stops() -> None:
    contract = LabContract.load(LABS / "hub3" / "expected.json")
    (path,) = trace.predict(contract, "server1", trace.endpoints(contract, "server1", "server2").dst)
    assert [(s.hop, s.node, s.ttl, s.out_if, s.mtu) for s in path.stops] == [
        (0, "server1", 64, "net0", 9500), (1, "gw1", 64, "tun0", 9480), (2, "gw-hub", 63, "tun1", 9476),
        (3, "gw2", 62, "eth1", 9500), (4, "server2", 61, None, None)]
    assert path.stops[1].encap == ("ipip: outer 172.12.1.11 > 172.12.1.10 (IP protocol 4, +20 bytes), "
                                   "out eth2 to sw-underlay:eth2, MTU 9500")
    assert path.stops[2].in_if == "tun0 (decap eth2)"
    assert path.stops[2].route == "10.1.3.0/24 via 1.1.2.2 dev tun1 proto static metric 20"
    assert path.path_mtu == 9476 and path.routers == 3


def test_a_fault_scenario_reroutes_the_prediction() -> None:
    contract = LabContract.load(LABS / "ospf-dualhub" / "expected.json")
    dst = trace.endpoints(contract, "host1", "host3").dst
    assert [s.node for s in trace.predict(contract, "host1", dst)[0].stops] == ["host1", "spoke1", "hub1", "spoke3", "host3"]
    scenario = contract.scenario("tunnel s1-hub1 down")
    assert scenario is not None
    routes = {n.name: n.routes for n in contract.nodes} | {c.node: c.routes for c in scenario.routes}
    (path,) = trace.predict(contract, "host1", dst, routes)
    assert [s.node for s in path.stops] == ["host1", "spoke1", "hub2", "spoke3", "host3"]
    assert path.path_mtu == 9476   # gre now


def test_compare_names_the_first_differing_hop() -> None:
    contract = LabContract.load(LABS / "hub3" / "expected.json")
    paths = trace.predict(contract, "server1", trace.endpoints(contract, "server1", "server2").dst)
    good = [trace.Answer(1, "exceeded", "10.1.2.1", "gw1"), trace.Answer(2, "exceeded", "1.1.1.1", "gw-hub"),
            trace.Answer(3, "exceeded", "1.1.2.2", "gw2"), trace.Answer(4, "reply", "10.1.3.10", "server2")]
    assert all(c.ok for c in trace.compare(paths, good)) and len(trace.compare(paths, good)) == 4
    cut = good[:1] + [trace.Answer(2, "unreachable", "1.1.1.1", "gw-hub", "network unreachable")]
    result = trace.compare(paths, cut)
    assert [c.ok for c in result] == [True, False]
    assert result[1].why == "predicted gw-hub to forward, but it says: network unreachable"
    astray = good[:1] + [trace.Answer(2, "exceeded", "10.1.1.1", "gw-hub"), trace.Answer(3, "exceeded", "1.1.1.2", "gw1", "time exceeded")]
    assert trace.compare(paths, astray)[2].why == "predicted gw2, measured gw1 (1.1.1.2) (time exceeded)"


def test_the_command_predicts_without_a_running_lab() -> None:
    result = run_clabgen("trace", str(LABS / "hub3"), "server1", "server2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["dst"], data["dst_node"], data["ok"], data["live"]) == ("10.1.3.10", "server2", True, None)
    assert [s["node"] for s in data["paths"][0]["stops"]] == ["server1", "gw1", "gw-hub", "gw2", "server2"]
    plain = run_clabgen("trace", str(LABS / "hub3"), "server1", "10.1.3.10")
    assert plain.stdout.splitlines()[0] == \
        "predicted server1 -> server2 (10.1.3.10): arrives with TTL 61 after 3 routers, path MTU 9476"
    assert "2\tgw-hub\ttun0 (decap eth2)\t63\t10.1.3.0/24 via 1.1.2.2 dev tun1" in plain.stdout


def test_bad_nodes_and_not_deployed() -> None:
    result = run_clabgen("trace", str(LABS / "hub3"), "server9", "nowhere")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: no node 'server9' in lab hub3 (nodes: gw-hub, gw1, gw2, server-hub, server1, server2)",
        "error: 'nowhere' is neither a node of lab hub3 nor an IPv4 address "
        "(nodes: gw-hub, gw1, gw2, server-hub, server1, server2)"]
    live = run_clabgen("trace", str(LABS / "hub3"), "server1", "server2", "--live")
    assert live.returncode == 1 and "lab hub3 is not deployed; --live needs it running" in live.stderr
