"""plan.py: every derived fact (addresses, ifnames, tunnel MTU, links, routes, ping TTLs) from small intents."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from clabgen import intent, plan
from clabgen.tunnels import TUNNEL_TYPES

from .conftest import LABS

SEED = (LABS / "ipip" / "intent.yml").read_text(encoding="utf-8")

HUB3 = (LABS / "hub3" / "intent.yml").read_text(encoding="utf-8")


@pytest.fixture
def build(tmp_path: Path):  # type: ignore[no-untyped-def]
    def _build(text: str) -> plan.Plan:
        path = tmp_path / "intent.yml"
        path.write_text(text, encoding="utf-8")
        return plan.build(intent.read_lab(path))
    return _build


def _addr(p: plan.Plan, node: str, ifname: str) -> str:
    return str(p.node(node).iface(ifname).address)


# --- addresses -------------------------------------------------------------------------------

def test_seed_addresses(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED)
    assert _addr(p, "gw1", "eth1") == "10.1.5.1/24"          # LAN gateway: first host
    assert _addr(p, "gw2", "eth1") == "10.1.8.1/24"
    assert _addr(p, "server1", "net0") == "10.1.5.10/24"     # servers from .10
    assert _addr(p, "server2", "net0") == "10.1.8.10/24"
    assert _addr(p, "gw1", "eth2") == "172.12.1.10/24"       # underlay from first_host, in site order
    assert _addr(p, "gw2", "eth2") == "172.12.1.11/24"
    assert _addr(p, "gw1", "tun0") == "1.1.1.1/24"           # tunnel: first two hosts, endpoint order
    assert _addr(p, "gw2", "tun0") == "1.1.1.2/24"
    assert p.node("server1").gateway == IPv4Address("10.1.5.1")


def test_servers_count_up_from_ten_and_first_host_moves_the_underlay(build) -> None:  # type: ignore[no-untyped-def]
    text = SEED.replace("servers: [server1]", "servers: [server1, server3, server4]").replace(
        "  subnet: 172.12.1.0/24", "  subnet: 172.12.1.0/24\n  first_host: 100")
    p = build(text)
    assert [str(p.node(n).address) for n in ("server1", "server3", "server4")] == ["10.1.5.10", "10.1.5.11", "10.1.5.12"]
    assert (_addr(p, "gw1", "eth2"), _addr(p, "gw2", "eth2")) == ("172.12.1.100/24", "172.12.1.101/24")


def test_tiny_lan_servers_start_after_the_gateway(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED.replace("lan: 10.1.5.0/24", "lan: 10.1.5.0/29").replace("servers: [server1]", "servers: [server1, server3]"))
    assert [str(p.node(n).address) for n in ("gw1", "server1", "server3")] == ["10.1.5.1", "10.1.5.2", "10.1.5.3"]


def test_tunnel_addresses_follow_endpoint_order_or_are_explicit(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED.replace("endpoints: [gw1, gw2]", "endpoints: [gw2, gw1]"))
    assert (_addr(p, "gw2", "tun0"), _addr(p, "gw1", "tun0")) == ("1.1.1.1/24", "1.1.1.2/24")
    p = build(SEED.replace("    subnet: 1.1.1.0/24", "    subnet: 1.1.1.0/24\n    addresses: [1.1.1.9, 1.1.1.7]"))
    assert (_addr(p, "gw1", "tun0"), _addr(p, "gw2", "tun0")) == ("1.1.1.9/24", "1.1.1.7/24")
    assert p.node("gw1").static_routes[0].next_hop == IPv4Address("1.1.1.7")


def test_tunnel_ends_use_underlay_addresses(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED)
    a, b = p.tunnels[0].ends
    assert (str(a.local), str(a.remote), a.underlay_if) == ("172.12.1.10", "172.12.1.11", "eth2")
    assert (b.node, b.peer_node, b.peer_ifname) == ("gw2", "gw1", "tun0")
    assert p.tunnels[0].name == "gw1-gw2-ipip"


# --- interface names -------------------------------------------------------------------------

def test_tunnel_ifnames_count_per_gateway_in_tunnel_order(build) -> None:  # type: ignore[no-untyped-def]
    p = build(HUB3)
    assert [e.ifname for e in p.node("gw-hub").tunnels] == ["tun0", "tun1"]
    assert [e.peer_node for e in p.node("gw-hub").tunnels] == ["gw1", "gw2"]
    assert [e.ifname for e in p.node("gw1").tunnels] == ["tun0"]
    assert [e.ifname for e in p.node("gw2").tunnels] == ["tun0"]
    assert [i.name for i in p.node("gw-hub").interfaces] == ["eth1", "eth2", "tun0", "tun1"]
    assert [i.name for i in p.node("server1").interfaces] == ["net0"]


# --- MTU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ttype, underlay_mtu", [("ipip", None), ("gre", None), ("ipip", 1500), ("gre", 1500)])
def test_tunnel_mtu_is_underlay_mtu_minus_overhead(build, ttype: str, underlay_mtu: int | None) -> None:  # type: ignore[no-untyped-def]
    text = SEED.replace("type: ipip", f"type: {ttype}")
    if underlay_mtu:
        text = text.replace("  subnet: 172.12.1.0/24", f"  subnet: 172.12.1.0/24\n  mtu: {underlay_mtu}")
    p = build(text)
    expected = (underlay_mtu or 9500) - TUNNEL_TYPES[ttype].overhead
    t = p.tunnels[0]
    assert (t.mtu, t.mtu_explicit, t.overhead) == (expected, False, TUNNEL_TYPES[ttype].overhead)
    assert p.node("gw1").iface("tun0").mtu == expected
    assert p.node("gw1").iface("eth2").mtu == (underlay_mtu or 9500)


def test_overheads_are_the_documented_ones() -> None:
    assert {k: (v.overhead, v.ip_proto) for k, v in TUNNEL_TYPES.items()} == \
        {"ipip": (20, 4), "gre": (24, 47), "wireguard": (60, 17), "ipsec": (86, 17)}


def test_explicit_tunnel_mtu_is_kept(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED.replace("    subnet: 1.1.1.0/24", "    subnet: 1.1.1.0/24\n    mtu: 1400"))
    assert (p.tunnels[0].mtu, p.tunnels[0].mtu_explicit) == (1400, True)


# --- links and switches ----------------------------------------------------------------------

def test_two_members_make_one_veth(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED)
    assert [(link.a, link.b, link.segment) for link in p.links] == [
        ("gw1:eth1", "server1:net0", "lan-site1"), ("gw2:eth1", "server2:net0", "lan-site2"),
        ("gw1:eth2", "gw2:eth2", "underlay")]
    assert not [n for n in p.nodes if n.role == "switch"]
    assert p.node("gw1").iface("eth1").peer == "server1:net0"


def test_more_members_make_a_bridge_node(build) -> None:  # type: ignore[no-untyped-def]
    p = build(HUB3.replace("servers: [server1]", "servers: [server1, server3]"))
    sw = p.node("sw-spoke1")
    assert (sw.role, sw.site) == ("switch", None)
    assert [(i.name, i.peer) for i in sw.interfaces] == [("eth1", "gw1:eth1"), ("eth2", "server1:net0"), ("eth3", "server3:net0")]
    assert "ip link add br0 type bridge" in sw.clab.exec
    under = p.node("sw-underlay")
    assert [i.peer for i in under.interfaces] == ["gw-hub:eth2", "gw1:eth2", "gw2:eth2"]
    assert {link.mtu for link in p.links if link.segment == "underlay"} == {9500}


def test_single_site_has_no_underlay(build) -> None:  # type: ignore[no-untyped-def]
    text = "name: one\nunderlay: {subnet: 172.12.1.0/24}\nsites:\n  - {name: s, lan: 10.0.0.0/24, gateway: gw, servers: [a, b]}\n"
    p = build(text)
    assert [i.name for i in p.node("gw").interfaces] == ["eth1"]
    assert {link.segment for link in p.links} == {"lan-s"}
    assert not p.tunnels and not p.node("gw").static_routes


# --- routes ----------------------------------------------------------------------------------

def test_seed_routes_as_ip_route_prints_them(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED)
    # the seed's `ip r s` on gw1 and server1, without containerlab's management eth0 routes
    assert [r.text() for r in p.node("gw1").routes] == [
        "1.1.1.0/24 dev tun0 proto kernel scope link src 1.1.1.1",
        "10.1.5.0/24 dev eth1 proto kernel scope link src 10.1.5.1",
        "10.1.8.0/24 via 1.1.1.2 dev tun0 proto static metric 20",
        "172.12.1.0/24 dev eth2 proto kernel scope link src 172.12.1.10",
    ]
    assert [r.text() for r in p.node("gw2").routes] == [
        "1.1.1.0/24 dev tun0 proto kernel scope link src 1.1.1.2",
        "10.1.5.0/24 via 1.1.1.1 dev tun0 proto static metric 20",
        "10.1.8.0/24 dev eth1 proto kernel scope link src 10.1.8.1",
        "172.12.1.0/24 dev eth2 proto kernel scope link src 172.12.1.11",
    ]
    assert [r.text() for r in p.node("server1").routes] == [
        "default via 10.1.5.1 dev net0",
        "10.1.5.0/24 dev net0 proto kernel scope link src 10.1.5.10",
    ]


def test_static_routes_take_the_shortest_tunnel_path(build) -> None:  # type: ignore[no-untyped-def]
    p = build(HUB3)
    def routes(n: str) -> list[tuple[str, str, str]]:
        return [(str(r.prefix), str(r.next_hop), r.dev) for r in p.node(n).static_routes]
    assert routes("gw1") == [("10.1.1.0/24", "1.1.1.1", "tun0"), ("10.1.3.0/24", "1.1.1.1", "tun0")]
    assert routes("gw2") == [("10.1.1.0/24", "1.1.2.1", "tun0"), ("10.1.2.0/24", "1.1.2.1", "tun0")]
    assert routes("gw-hub") == [("10.1.2.0/24", "1.1.1.2", "tun0"), ("10.1.3.0/24", "1.1.2.2", "tun1")]
    # with a direct spoke-spoke tunnel the spokes stop going through the hub
    at = HUB3.index("routing:")
    direct = HUB3[:at] + "  - type: ipip\n    endpoints: [gw1, gw2]\n    subnet: 1.1.3.0/30\n" + HUB3[at:]
    p = build(direct)
    assert routes("gw1") == [("10.1.1.0/24", "1.1.1.1", "tun0"), ("10.1.3.0/24", "1.1.3.2", "tun1")]


def test_unconnected_sites_get_no_route_and_a_warning(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED[:SEED.index("tunnels:")] + SEED[SEED.index("routing:"):])
    assert not p.node("gw1").static_routes
    assert any("server1 cannot reach server2" in w for w in p.warnings)


# --- pings and walks -------------------------------------------------------------------------

def _ttl(p: plan.Plan, src: str, dst: str) -> int:
    return next(x.ttl for x in p.pings if (x.src, x.dst, x.kind) == (src, dst, "server"))


def test_ping_ttl_across_two_gateways_is_62(build) -> None:  # type: ignore[no-untyped-def]
    p = build(SEED)
    assert _ttl(p, "server1", "server2") == 62 and _ttl(p, "server2", "server1") == 62
    assert {(x.src, x.dst, x.ttl) for x in p.pings if x.kind == "tunnel"} == {("gw1", "gw2", 64), ("gw2", "gw1", 64)}


def test_ping_ttl_via_the_hub_is_61(build) -> None:  # type: ignore[no-untyped-def]
    p = build(HUB3)
    assert _ttl(p, "server1", "server2") == 61
    assert _ttl(p, "server2", "server1") == 61
    assert _ttl(p, "server1", "server-hub") == 62


def test_walk_crosses_the_hub(build) -> None:  # type: ignore[no-untyped-def]
    p = build(HUB3)
    walk = next(w for w in p.walks if (w.src, w.dst) == ("server1", "server2"))
    assert [h.node for h in walk.hops] == ["server1", "gw1", "gw-hub", "gw-hub", "gw2", "gw2", "server2"]
    assert walk.hops[-1].note == "delivered"
    cap = {c.tunnel: (c.node, c.ip_proto, c.underlay_frame_len) for c in p.captures}
    assert cap == {"gw-hub-gw1-ipip": ("gw-hub", 4, 118), "gw-hub-gw2-gre": ("gw-hub", 47, 122)}


EXPLICIT_IFNAMES = """\
name: ifn
underlay: {subnet: 172.12.1.0/24}
sites:
  - name: a
    lan: 10.1.5.0/24
    gateway: {name: gw1, lan_ifname: eth5, underlay_ifname: eth7}
    servers: [{name: s1, ifname: lan0}]
  - name: b
    lan: 10.1.8.0/24
    gateway: gw2
    servers: [s2]
tunnels:
  - {type: ipip, endpoints: [gw1, gw2], subnet: 1.1.1.0/30, ifnames: [tun7, tun0]}
  - {type: gre, endpoints: [gw1, gw2], subnet: 1.1.2.0/30}
"""


def test_explicit_interface_names_win_and_derived_ones_skip_them(build) -> None:  # type: ignore[no-untyped-def]
    p = build(EXPLICIT_IFNAMES)
    assert [i.name for i in p.node("gw1").interfaces] == ["eth5", "eth7", "tun7", "tun0"]
    assert [i.name for i in p.node("gw2").interfaces] == ["eth1", "eth2", "tun0", "tun1"]
    assert [i.name for i in p.node("s1").interfaces] == ["lan0"]
    assert [(link.a, link.b) for link in p.links] == [("gw1:eth5", "s1:lan0"), ("gw2:eth1", "s2:net0"),
                                                      ("gw1:eth7", "gw2:eth2")]
    assert p.node("s1").clab.exec[0] == "ip addr add 10.1.5.10/24 dev lan0"
    gre = p.tunnels[1]
    assert [(e.node, e.ifname, e.underlay_if) for e in gre.ends] == [("gw1", "tun0", "eth7"), ("gw2", "tun1", "eth2")]
