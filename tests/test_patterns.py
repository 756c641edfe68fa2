"""Intent patterns (site templates, hub-spoke and mesh tunnel entries) expand into the ordinary
sites and tunnels they stand for: the same lab, byte for byte, as the intent written out by hand.
Bad pattern intents are in tests/data/bad/pattern-*.yml and template-*.yml (test_intent.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from clabgen import intent, plan, render
from clabgen.model import Lab

COMPACT = """\
name: hubs
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: hub, lan: 10.0.0.0/24, gateway: gw-hub, servers: [server-hub]}
  - {name: spoke, count: 3, lans: 10.1.0.0/16, gateway: gw, servers: [server]}
tunnels:
  - {pattern: hub-spoke, hub: gw-hub, type: gre, pool: 172.31.0.0/24}
"""

WRITTEN_OUT = """\
name: hubs
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: hub, lan: 10.0.0.0/24, gateway: gw-hub, servers: [server-hub]}
  - {name: spoke1, lan: 10.1.0.0/24, gateway: gw1, servers: [server1]}
  - {name: spoke2, lan: 10.1.1.0/24, gateway: gw2, servers: [server2]}
  - {name: spoke3, lan: 10.1.2.0/24, gateway: gw3, servers: [server3]}
tunnels:
  - {endpoints: [gw-hub, gw1], subnet: 172.31.0.0/30, type: gre}
  - {endpoints: [gw-hub, gw2], subnet: 172.31.0.4/30, type: gre}
  - {endpoints: [gw-hub, gw3], subnet: 172.31.0.8/30, type: gre}
"""


def _lab(tmp_path: Path, text: str, name: str = "intent.yml") -> Lab:
    path = tmp_path / name
    path.write_text(text)
    return intent.read_lab(path, name)


def _files(lab: Lab) -> dict[str, bytes]:
    return {f.path: f.data for f in render.render(plan.build(lab), "intent.yml")}


def test_patterns_render_the_written_out_lab(tmp_path: Path) -> None:
    compact = _files(_lab(tmp_path, COMPACT, "a.yml"))
    written = _files(_lab(tmp_path, WRITTEN_OUT, "b.yml"))
    assert compact == written


def test_explicit_and_pattern_tunnels_mix_in_file_order(tmp_path: Path) -> None:
    text = COMPACT.replace("tunnels:\n", "tunnels:\n  - {endpoints: [gw1, gw2], subnet: 192.168.9.0/30}\n")
    text = text.replace("pattern: hub-spoke, hub: gw-hub,", "pattern: hub-spoke, hub: gw-hub, spokes: [gw3, gw1],")
    lab = _lab(tmp_path, text)
    got = [(t.endpoints, str(t.subnet), t.type) for t in lab.tunnels]
    assert got == [(("gw1", "gw2"), "192.168.9.0/30", "ipip"),
                   (("gw-hub", "gw3"), "172.31.0.0/30", "gre"),     # carved in the order spokes are listed
                   (("gw-hub", "gw1"), "172.31.0.4/30", "gre")]


def test_mesh_pairs_and_slash31(tmp_path: Path) -> None:
    text = """\
name: m
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: site, count: 4, start: 0, lans: 10.2.0.0/16, lan_prefix: 25, gateway: gw, servers: [a, b]}
tunnels:
  - {pattern: mesh, pool: 172.31.0.0/24, prefix: 31}
"""
    lab = _lab(tmp_path, text)
    assert [s.name for s in lab.sites] == ["site0", "site1", "site2", "site3"]
    assert [str(s.lan) for s in lab.sites] == ["10.2.0.0/25", "10.2.0.128/25", "10.2.1.0/25", "10.2.1.128/25"]
    assert [x.name for x in lab.sites[2].servers] == ["a2", "b2"]
    assert [t.endpoints for t in lab.tunnels] == [("gw0", "gw1"), ("gw0", "gw2"), ("gw0", "gw3"),
                                                  ("gw1", "gw2"), ("gw1", "gw3"), ("gw2", "gw3")]
    assert [t.subnet for t in lab.tunnels][:2] == [IPv4Network("172.31.0.0/31"), IPv4Network("172.31.0.2/31")]
    p = plan.build(lab)
    first = p.tunnels[0]
    # a /31 has no network or broadcast address: its two hosts are .0 and .1
    assert [e.address.ip for e in first.ends] == [IPv4Address("172.31.0.0"), IPv4Address("172.31.0.1")]
    assert not p.warnings


def test_hub200_example_is_short(tmp_path: Path) -> None:
    """docs/examples/hub200.yml, the 200-site hub-and-spoke: under 15 lines, 200 sites, 199 tunnels."""
    from .conftest import ROOT
    text = (ROOT / "docs" / "examples" / "hub200.yml").read_text()
    assert len([ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]) < 15
    lab = _lab(tmp_path, text)
    assert len(lab.sites) == 200 and len(lab.tunnels) == 199
