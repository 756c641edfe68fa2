"""The routing registry's predictions on labs of our own: OSPF costs, ECMP, areas; BGP paths; faults."""

from __future__ import annotations

from pathlib import Path

from clabgen import intent, plan
from clabgen.planned import Plan

TRIANGLE = """\
name: tri
defaults: {gateway: {platform: vyos-1.4}}
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: a, lan: 10.1.0.0/24, gateway: gwa, servers: [sa]}
  - {name: b, lan: 10.2.0.0/24, gateway: gwb, servers: [sb]}
  - {name: c, lan: 10.3.0.0/24, gateway: gwc, servers: [sc]}
tunnels:
  - {name: ab, endpoints: [gwa, gwb], subnet: 10.0.12.0/30}
  - {name: bc, endpoints: [gwb, gwc], subnet: 10.0.23.0/30, type: gre}
  - {name: ac, endpoints: [gwa, gwc], subnet: 10.0.13.0/30}
"""


def build(tmp_path: Path, text: str) -> Plan:
    f = tmp_path / "intent.yml"
    f.write_text(text)
    return plan.build(intent.read_lab(f))


def table(p: Plan, node: str) -> dict[str, str]:
    return {r.dst: r.text() for r in p.node(node).routes}


def test_ospf_costs_and_equal_cost_multipath(tmp_path: Path) -> None:
    p = build(tmp_path, TRIANGLE + "routing:\n  type: ospf\n  tunnels: {ac: {cost: 20}}\n")
    a = table(p, "gwa")
    assert a["10.2.0.0/24"] == "10.2.0.0/24 via 10.0.12.2 dev tun0 proto ospf metric 20"
    # via b: 10 + 10 + LAN 10 = 30; direct: 20 + LAN 10 = 30 -> both
    assert a["10.3.0.0/24"] == ("10.3.0.0/24 proto ospf metric 20 nexthop via 10.0.12.2 dev tun0 weight 1 "
                                "nexthop via 10.0.13.2 dev tun1 weight 1")
    assert next(r for r in p.node("gwa").routes if r.dst == "10.3.0.0/24").cost == 30
    assert a["10.255.255.2/32"].startswith("10.255.255.2/32 via 10.0.12.2 dev tun0 proto ospf")   # loopback, cost 0
    ping = next(x for x in p.pings if (x.src, x.dst) == ("sa", "sc"))
    assert (ping.ttl, ping.alt_ttls) == (62, (61,))      # either way back
    assert {(x.node, x.peer) for x in p.adjacencies} == {("gwa", "gwb"), ("gwb", "gwa"), ("gwb", "gwc"),
                                                         ("gwc", "gwb"), ("gwa", "gwc"), ("gwc", "gwa")}
    assert all(n.tunnel_ttl == 64 and n.ospf is not None for n in p.gateways)


def test_ospf_reroutes_in_the_fault_scenario(tmp_path: Path) -> None:
    p = build(tmp_path, TRIANGLE + "routing: ospf\n")
    s = next(x for x in p.scenarios if x.name == "tunnel ab down")
    gwa = dict(s.routes)["gwa"]
    assert "10.2.0.0/24 via 10.0.13.2 dev tun1 proto ospf metric 20" in [r.text() for r in gwa]
    assert "10.0.12.0/30 dev tun0 proto kernel scope link src 10.0.12.1" not in [r.text() for r in gwa]
    assert s.unreachable == ()
    assert next(x for x in s.pings if (x.src, x.dst) == ("sa", "sb")).ttl == 61   # now through c


def test_ospf_inter_area_routes_through_the_border_router(tmp_path: Path) -> None:
    chain = TRIANGLE.replace("  - {name: ac, endpoints: [gwa, gwc], subnet: 10.0.13.0/30}\n", "")
    p = build(tmp_path, chain + "routing:\n  type: ospf\n  tunnels: {bc: {area: 1}}\n")
    # gwb is the border router (area 0 to gwa, area 1 to gwc); gwc's LAN sits in area 1
    c = p.node("gwc").ospf
    assert c is not None and [a for a, _ in c.areas] == ["1"]
    a = {r.dst: r for r in p.node("gwa").routes}
    assert a["10.3.0.0/24"].via == "10.0.12.2" and a["10.3.0.0/24"].cost == 30
    assert a["10.0.23.0/30"].cost == 20


def test_bgp_hub_and_spoke_as_paths(tmp_path: Path) -> None:
    p = build(tmp_path, (Path(__file__).parents[1] / "labs" / "bgp-hubspoke" / "intent.yml").read_text())
    east = {r.dst: r for r in p.node("east").routes}
    assert east["10.102.0.0/24"].text() == "10.102.0.0/24 via 172.30.1.1 dev tun0 proto bgp metric 20"
    assert east["10.102.0.0/24"].as_path == (65001, 65003)
    assert [x.remote_as for x in p.node("hub").bgp.peers] == [65002, 65003, 65004]   # type: ignore[union-attr]
    assert next(x for x in p.pings if (x.src, x.dst) == ("east1", "west1")).ttl == 61
    lost = next(s for s in p.scenarios if s.name == "tunnel hub-west-gre down")
    assert ("east1", "west1") in lost.unreachable


def test_bgp_prefers_the_shorter_as_path_and_refuses_loops(tmp_path: Path) -> None:
    p = build(tmp_path, TRIANGLE + "routing: bgp\n")
    a = {r.dst: r for r in p.node("gwa").routes}
    assert a["10.3.0.0/24"].as_path == (65003,) and a["10.3.0.0/24"].dev == "tun1"
    # from c's point of view b's LAN is one AS away, never through a (no path may hold c's own AS twice)
    c = {r.dst: r for r in p.node("gwc").routes}
    assert c["10.2.0.0/24"].as_path == (65002,)


def test_ibgp_over_loopbacks_adds_static_routes_and_next_hop_self(tmp_path: Path) -> None:
    text = TRIANGLE.replace("gateway: gwb,", "gateway: {name: gwb, asn: 65001},")
    p = build(tmp_path, text + "routing: {type: bgp, ibgp: loopback, announce: [lans, loopbacks]}\n")
    gwa = p.node("gwa")
    assert gwa.bgp is not None
    peer = next(x for x in gwa.bgp.peers if x.name == "gwb")
    assert (peer.remote_as, peer.update_source, peer.next_hop_self) == (65001, "lo", True)
    assert [str(r.prefix) for r in gwa.static_routes] == ["10.255.255.2/32"]
    b_lan = next(r for r in gwa.routes if r.dst == "10.2.0.0/24")
    assert (b_lan.via, b_lan.dev, b_lan.as_path) == ("10.0.12.2", "tun0", ())
