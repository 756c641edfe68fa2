"""Dynamic routing in the VyOS templates (OSPF, BGP, BFD, loopback, tunnel TTL), release by release.

The templates are rendered directly, with a real gateway view (hub3) plus the routing keys the plan
gives a gateway: `loopback`, `tunnels[i].ttl`, `ospf`, `bgp`, `bfd_peers`. Each result is checked
against its release's syntax oracle (the config.boot and the set listing derived from it, and that
both are one tree), then for the mistakes the oracle of one release would not see in another.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from clabgen import intent, plan, platforms, view, vyos_config
from clabgen.vyos_config import CNode

from .conftest import LABS, lab_dirs

RELEASES = {"vyos-1.2": "1.2", "vyos-1.4": "1.4", "vyos-1.5": "1.5"}


@cache
def _lab_view(lab: str) -> dict[str, Any]:
    return view.lab_view(plan.build(intent.read_lab(LABS / lab / "intent.yml")))


def _quiet(gw: dict[str, Any]) -> dict[str, Any]:
    """A gateway view with every routing key the plan adds, all saying "nothing"."""
    gw = copy.deepcopy(gw)
    gw.update(loopback=None, ospf=None, bgp=None, bfd_peers=[])
    for t in gw["tunnels"]:
        t["ttl"] = None
    return gw


def _hub3(name: str) -> dict[str, Any]:
    return _quiet(next(g for g in _lab_view("hub3")["gateways"] if g["name"] == name))


def _ospf_if(ifname: str, kind: str, *, cost: int | None = None, hello: int | None = None, dead: int | None = None,
             network: str | None = None, passive: bool = False, bfd: bool = False) -> dict[str, Any]:
    return {"ifname": ifname, "kind": kind, "cost": cost, "hello": hello, "dead": dead, "network": network,
            "passive": passive, "bfd": bfd}


def _ospf(*, bfd: bool = False) -> dict[str, Any]:
    """gw-hub in area 0: its LAN, both tunnels and its loopback; tunnels point-to-point."""
    return {
        "router_id": "10.255.255.1",
        "areas": [{"id": "0", "networks": ["10.1.1.0/24", "1.1.1.0/30", "1.1.2.0/30", "10.255.255.1/32"]}],
        "interfaces": [
            _ospf_if("tun1", "tunnel", cost=10, hello=1, dead=4, network="point-to-point", bfd=bfd),
            _ospf_if("tun0", "tunnel", cost=10, hello=1, dead=4, network="point-to-point", bfd=bfd),
            _ospf_if("eth1", "ethernet", cost=10, passive=True),
            _ospf_if("lo", "loopback", passive=True),
        ],
        "spf": {"delay": 0, "initial": 50, "max": 500},
    }


def _neighbor(address: str, remote_as: int, description: str, *, update_source: str | None = None,
              next_hop_self: bool = False, bfd: bool = False, multihop: int | None = None) -> dict[str, Any]:
    return {"address": address, "remote_as": remote_as, "description": description, "update_source": update_source,
            "next_hop_self": next_hop_self, "bfd": bfd, "multihop": multihop}


def _bgp(asn: int, router_id: str, networks: list[str], neighbors: list[dict[str, Any]]) -> dict[str, Any]:
    # holdtime 4, not 3: VyOS 1.2 refuses a holdtime between 1 and 3 (vyatta-cfg-quagga crux
    # protocols/bgp/node.tag/timers/holdtime: "must be 0 or between 4 and 65535"), a legacy
    # expression the oracle accepts unchecked.
    return {"asn": asn, "router_id": router_id, "networks": networks, "keepalive": 1, "holdtime": 4,
            "compare_routerid": True, "neighbors": neighbors}


def _peer(address: str) -> dict[str, Any]:
    return {"address": address, "multiplier": 3, "receive": 300, "transmit": 300}


def ospf_only() -> dict[str, Any]:
    gw = _hub3("gw-hub")
    gw.update(loopback="10.255.255.1/32", ospf=_ospf(), static_routes=[])
    for t in gw["tunnels"]:
        t["ttl"] = 64
    return gw


def bgp_only() -> dict[str, Any]:
    """eBGP to both spokes over the tunnels' inner addresses; no loopback, no static routes."""
    gw = _hub3("gw-hub")
    gw.update(static_routes=[], bgp=_bgp(65001, "1.1.1.1", ["10.1.1.0/24"], [
        _neighbor("1.1.2.2", 65003, "gw2"),
        _neighbor("1.1.1.2", 65002, "gw1"),
    ]))
    return gw


def ibgp_loopback() -> dict[str, Any]:
    """gw1 and gw-hub in one AS, peering loopback to loopback (reached by a static route)."""
    gw = _hub3("gw1")
    gw.update(loopback="10.255.255.2/32", static_routes=[{"prefix": "10.255.255.1/32", "next_hop": "1.1.1.1",
                                                          "dev": "tun0"}],
              bgp=_bgp(65001, "10.255.255.2", ["10.1.2.0/24"], [
                  _neighbor("10.255.255.1", 65001, "gw-hub", update_source="10.255.255.2", next_hop_self=True),
              ]))
    return gw


def ospf_bfd() -> dict[str, Any]:
    gw = ospf_only()
    gw.update(ospf=_ospf(bfd=True), bfd_peers=[_peer("1.1.2.2"), _peer("1.1.1.2")])
    return gw


def ospf_and_bgp() -> dict[str, Any]:
    """OSPF plus eBGP: a BFD neighbor with the plan's peer, one without (1.2 needs a peer for it),
    a multihop neighbor with a description that must be quoted, neighbors in no particular order."""
    gw = ospf_only()
    gw.update(bfd_peers=[_peer("1.1.1.2")], bgp=_bgp(65001, "10.255.255.1", ["10.1.1.0/24", "10.255.255.1/32"], [
        _neighbor("1.1.10.2", 65010, "far spoke", multihop=2),
        _neighbor("1.1.2.2", 65003, "gw2", bfd=True),
        _neighbor("1.1.1.2", 65002, "gw1", bfd=True),
    ]))
    return gw


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f for f in (ospf_only, bgp_only, ibgp_loopback, ospf_bfd, ospf_and_bgp)}
CASES = [(s, p) for s in SCENARIOS for p in RELEASES]


def render(platform: str, gw: dict[str, Any], lab: str = "hub3") -> str:
    """config.boot as render.render() renders it: lab, gw, source, platform {name, footer}."""
    template = platforms.load(platform).environment().get_template("config.boot.j2")
    return template.render(lab=_lab_view(lab), gw=gw, source=f"labs/{lab}/intent.yml",
                           platform=view.platform_view(platform))


def set_listing(text: str) -> str:
    return "\n".join(vyos_config.set_commands(vyos_config.parse_boot(text))) + "\n"


def tree(platform: str, gw: dict[str, Any]) -> CNode:
    return vyos_config.parse_boot(render(platform, gw))


def _oracle(oracles: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(oracles / "vyos" / "vyos_syntax.py"), *args],
                          capture_output=True, text=True)


def _leaves(node: CNode) -> list[str]:
    return [c.name for c in node.children]


def _tags(nodes: list[CNode]) -> list[str | None]:
    return [n.tag for n in nodes]


# --- every release's oracle, both forms, one tree ---------------------------------------------

@pytest.mark.parametrize(("scenario", "platform"), CASES, ids=[f"{s}-{p}" for s, p in CASES])
def test_oracle_accepts_config_and_set_listing(scenario: str, platform: str, oracles: Path, tmp_path: Path) -> None:
    text = render(platform, SCENARIOS[scenario]())
    cfg, listing = tmp_path / "gw.cfg", tmp_path / "gw.set"
    cfg.write_text(text)
    listing.write_text(set_listing(text))
    result = _oracle(oracles, "--release", RELEASES[platform], "--strict", str(cfg), str(listing))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _oracle(oracles, "--same", str(cfg), str(listing))
    assert result.returncode == 0, result.stdout + result.stderr
    assert vyos_config.same_tree(text, listing.read_text()) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_other_release_oracle_refuses_it(scenario: str, oracles: Path, tmp_path: Path) -> None:
    """The releases really differ here: each config is refused by the other release's oracle."""
    for platform, other in (("vyos-1.2", "1.4"), ("vyos-1.4", "1.2")):
        cfg = tmp_path / f"{platform}.cfg"
        cfg.write_text(render(platform, SCENARIOS[scenario]()))
        assert _oracle(oracles, "--release", other, "--strict", str(cfg)).returncode == 1, (platform, other)


def test_1_5_renders_1_4_but_its_footer() -> None:
    for make in SCENARIOS.values():
        a, b = render("vyos-1.4", make()), render("vyos-1.5", make())
        assert a.split("// Warning")[0] == b.split("// Warning")[0]


# --- no dynamic routing: nothing changes ------------------------------------------------------

STATIC_LABS = [lab for lab in lab_dirs() if not _lab_view(lab.name)["routing"]["adjacencies"]]


@pytest.mark.parametrize("lab", STATIC_LABS, ids=lambda p: p.name)
def test_gateway_without_dynamic_routing_renders_as_before(lab: Path) -> None:
    """The routing keys present but empty: every static lab's golden config stays byte for byte."""
    for gw in _lab_view(lab.name)["gateways"]:
        text = render(gw["platform"], _quiet(gw), lab.name)
        assert text == (lab / "startup-conf" / f"{gw['name']}.cfg").read_text(), gw["name"]
        assert set_listing(text) == (lab / "startup-conf" / f"{gw['name']}.set").read_text(), gw["name"]


# --- what each release writes -----------------------------------------------------------------

@pytest.mark.parametrize("platform", RELEASES)
def test_loopback_address_and_tunnel_ttl(platform: str) -> None:
    t = tree(platform, ospf_only())
    (lo,) = t.find("interfaces", "loopback")
    assert lo.tag == "lo" and lo.leaf_values("address") == ["10.255.255.1/32"]
    for tun in t.find("interfaces", "tunnel"):
        assert [n.leaf_value("ttl") for n in tun.find("parameters", "ip")] == ["64"], tun.tag
    quiet = tree(platform, _hub3("gw-hub"))
    assert quiet.find("interfaces", "loopback")[0].children == []
    assert quiet.find("interfaces", "tunnel", "parameters") == []


@pytest.mark.parametrize("platform", RELEASES)
def test_protocols_only_what_is_set_in_vyos_order(platform: str) -> None:
    assert _leaves(tree(platform, ospf_only()).find("protocols")[0]) == ["ospf"]
    assert _leaves(tree(platform, bgp_only()).find("protocols")[0]) == ["bgp"]
    assert _leaves(tree(platform, ibgp_loopback()).find("protocols")[0]) == ["bgp", "static"]
    both = _leaves(tree(platform, ospf_and_bgp()).find("protocols")[0])
    assert both == ["bfd", "bgp", "ospf"]
    gw = _hub3("gw-hub")
    gw["static_routes"] = []
    assert tree(platform, gw).find("protocols") == []


def test_ospf_1_2_per_interface_under_interfaces_passive_as_leaves() -> None:
    t = tree("vyos-1.2", ospf_bfd())
    (ospf,) = t.find("protocols", "ospf")
    assert _leaves(ospf) == ["area", "parameters", "passive-interface", "passive-interface", "timers"]
    assert ospf.leaf_values("passive-interface") == ["eth1", "lo"]
    assert ospf.find("interface") == []
    assert ospf.find("area")[0].leaf_values("network") == ["10.1.1.0/24", "1.1.1.0/30", "1.1.2.0/30",
                                                           "10.255.255.1/32"]
    assert ospf.find("parameters")[0].leaf_value("router-id") == "10.255.255.1"
    (spf,) = ospf.find("timers", "throttle", "spf")
    assert [(c.name, c.value) for c in spf.children] == [("delay", "0"), ("initial-holdtime", "50"),
                                                         ("max-holdtime", "500")]
    for tun in t.find("interfaces", "tunnel"):
        (o,) = tun.find("ip", "ospf")
        assert [(c.name, c.value, c.leaf) for c in o.children] == [
            ("bfd", None, True), ("cost", "10", True), ("dead-interval", "4", True), ("hello-interval", "1", True),
            ("network", "point-to-point", True)]
    eth1 = next(e for e in t.find("interfaces", "ethernet") if e.tag == "eth1")
    assert [(c.name, c.value) for c in eth1.find("ip", "ospf")[0].children] == [("cost", "10")]
    eth2 = next(e for e in t.find("interfaces", "ethernet") if e.tag == "eth2")
    assert eth2.find("ip") == []                                   # no settings: nothing written
    assert t.find("interfaces", "loopback", "ip") == []


@pytest.mark.parametrize("platform", ["vyos-1.4", "vyos-1.5"])
def test_ospf_1_4_per_interface_under_protocols(platform: str) -> None:
    text = render(platform, ospf_bfd())
    t = vyos_config.parse_boot(text)
    (ospf,) = t.find("protocols", "ospf")
    assert _leaves(ospf) == ["area", "interface", "interface", "interface", "interface", "parameters", "timers"]
    assert ospf.find("passive-interface") == []
    ifs = {i.tag: [(c.name, c.value) for c in i.children] for i in ospf.find("interface")}
    assert _tags(ospf.find("interface")) == ["eth1", "lo", "tun0", "tun1"]
    assert ifs["tun0"] == [("bfd", None), ("cost", "10"), ("dead-interval", "4"), ("hello-interval", "1"),
                           ("network", "point-to-point")]
    assert ifs["eth1"] == [("cost", "10"), ("passive", None)]
    assert ifs["lo"] == [("passive", None)]
    assert not any(c.leaf for i in ospf.find("interface") for c in i.children if c.name in ("bfd", "passive"))
    assert t.find("interfaces", "tunnel", "ip") == [] and t.find("interfaces", "ethernet", "ip") == []
    assert "ospf" not in text.split("protocols {")[0]


@pytest.mark.parametrize("platform", RELEASES)
def test_ospf_interface_with_nothing_to_say_is_left_out(platform: str) -> None:
    gw = ospf_only()
    gw["ospf"]["interfaces"].append(_ospf_if("eth2", "ethernet"))
    assert render(platform, gw) == render(platform, ospf_only())


def test_bgp_1_2_asn_is_the_tag() -> None:
    t = tree("vyos-1.2", ospf_and_bgp())
    (bgp,) = t.find("protocols", "bgp")
    assert bgp.tag == "65001"
    assert _leaves(bgp) == ["address-family", "neighbor", "neighbor", "neighbor", "parameters", "timers"]
    assert bgp.find("system-as") == []
    assert _tags(bgp.find("address-family", "ipv4-unicast", "network")) == ["10.1.1.0/24", "10.255.255.1/32"]
    assert _tags(bgp.find("neighbor")) == ["1.1.1.2", "1.1.2.2", "1.1.10.2"]     # VyOS's order, not the plan's
    for n in bgp.find("neighbor"):
        assert n.find("address-family") == []                      # 1.2 activates IPv4 unicast itself
        assert [(c.name, c.value) for c in n.find("timers")[0].children] == [("holdtime", "4"), ("keepalive", "1")]
    far = bgp.find("neighbor")[2]
    assert [c.name for c in far.children] == ["description", "ebgp-multihop", "remote-as", "timers"]
    assert far.leaf_value("description") == "far spoke" and far.leaf_value("ebgp-multihop") == "2"
    assert [c.name for c in bgp.find("parameters")[0].children] == ["bestpath", "router-id"]
    assert bgp.find("parameters", "bestpath")[0].has_leaf("compare-routerid")
    assert [(c.name, c.value) for c in bgp.find("timers")[0].children] == [("holdtime", "4"), ("keepalive", "1")]


@pytest.mark.parametrize("platform", ["vyos-1.4", "vyos-1.5"])
def test_bgp_1_4_system_as_and_every_neighbor_activated(platform: str) -> None:
    for make in (bgp_only, ibgp_loopback, ospf_and_bgp):
        t = tree(platform, make())
        (bgp,) = t.find("protocols", "bgp")
        assert bgp.tag is None and bgp.leaf_value("system-as") == str(make()["bgp"]["asn"])
        assert [c.name for c in bgp.children if c.name != "neighbor"] == ["address-family", "parameters",
                                                                          "system-as", "timers"]
        for n in bgp.find("neighbor"):
            assert n.children[0].name == "address-family" and len(n.find("address-family", "ipv4-unicast")) == 1


@pytest.mark.parametrize("platform", RELEASES)
def test_ibgp_over_loopback(platform: str) -> None:
    t = tree(platform, ibgp_loopback())
    (n,) = t.find("protocols", "bgp", "neighbor")
    assert n.tag == "10.255.255.1"
    assert n.leaf_value("update-source") == "10.255.255.2" and n.leaf_value("remote-as") == "65001"
    (nhs,) = n.find("address-family", "ipv4-unicast", "nexthop-self")
    assert not nhs.leaf and nhs.children == []
    assert n.find("ebgp-multihop") == [] and n.find("bfd") == []
    assert t.find("protocols", "static", "route")[0].tag == "10.255.255.1/32"


def test_bfd_1_2_every_bfd_neighbor_has_a_peer() -> None:
    t = tree("vyos-1.2", ospf_and_bgp())
    peers = {p.tag: p for p in t.find("protocols", "bfd", "peer")}
    assert list(peers) == ["1.1.1.2", "1.1.2.2"]
    assert [(c.name, c.value) for c in peers["1.1.1.2"].find("interval")[0].children] == [
        ("multiplier", "3"), ("receive", "300"), ("transmit", "300")]
    assert peers["1.1.2.2"].children == []                         # the plan gave no timers: FRR's
    bfd_neighbors = [n.tag for n in t.find("protocols", "bgp", "neighbor") if n.find("bfd")]
    assert bfd_neighbors and set(bfd_neighbors) <= set(peers)


@pytest.mark.parametrize("platform", ["vyos-1.4", "vyos-1.5"])
def test_bfd_1_4_only_the_plans_peers(platform: str) -> None:
    t = tree(platform, ospf_and_bgp())
    assert _tags(t.find("protocols", "bfd", "peer")) == ["1.1.1.2"]
    assert [n.tag for n in t.find("protocols", "bgp", "neighbor") if n.find("bfd")] == ["1.1.1.2", "1.1.2.2"]


@pytest.mark.parametrize("platform", RELEASES)
def test_bfd_peers_in_vyos_order_with_timers(platform: str) -> None:
    t = tree(platform, ospf_bfd())
    peers = t.find("protocols", "bfd", "peer")
    assert _tags(peers) == ["1.1.1.2", "1.1.2.2"]
    assert all(p.find("interval")[0].leaf_value("multiplier") == "3" for p in peers)


def test_cross_release_mistakes_absent() -> None:
    for make in SCENARIOS.values():
        v12, v14 = render("vyos-1.2", make()), render("vyos-1.4", make())
        assert "system-as" not in v12 and "source-address" not in v12 and "\n        interface " not in v12
        assert "bgp {" not in v12
        assert "passive-interface" not in v14 and "local-ip" not in v14 and "remote-ip" not in v14
        assert "multicast" not in v14 and "smp-affinity" not in v14
        assert not any(line.strip().startswith("bgp 6") for line in v14.splitlines())
        assert re.search(r"ip \{\s*ospf \{", v14) is None
        assert (re.search(r"ip \{\s*ospf \{", v12) is None) == (make()["ospf"] is None)
        assert "ospf" not in v14.split("\nprotocols {")[0]


def test_sorted_tags_natural_order() -> None:
    env = platforms.load("vyos-1.2").environment()
    t = env.from_string('{% from "macros.j2" import sorted_tags %}'
                        '{% call(x) sorted_tags(items) %}{{ x }} {% endcall %}')
    items = ["tun10", "eth2", "tun2", "eth10", "lo", "10.1.1.0/24", "9.0.0.0/8", "1.1.10.2", "1.1.2.2"]
    assert t.render(items=items).split() == ["1.1.2.2", "1.1.10.2", "9.0.0.0/8", "10.1.1.0/24",
                                             "eth2", "eth10", "lo", "tun2", "tun10"]


def test_value_quoting() -> None:
    env = platforms.load("vyos-1.2").environment()
    t = env.from_string('{% from "macros.j2" import value %}[{{ value(v) }}]')
    assert t.render(v="gw2") == "[gw2]"
    assert t.render(v="far spoke") == '["far spoke"]'
    assert t.render(v="") == '[""]'
