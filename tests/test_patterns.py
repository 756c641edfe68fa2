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


MIXED = """\
name: mixed
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: core, count: 3, start: 0, lans: 10.2.0.0/16, lan_prefix: 25, gateway: {name: c, platform: vyos-1.4}}
  - {name: branch-x, lan: 10.9.0.0/24, gateway: gw-x, servers: [server-x]}
  - {name: br, count: 2, lans: 10.3.0.0/16, gateway: b, servers: [a, {name: db, ifname: net1}]}
tunnels:
  - {endpoints: [b1, b2], subnet: 192.168.9.0/30, type: gre}
  - {pattern: mesh, gateways: all, pool: 172.31.0.0/24, prefix: 31}
  - {pattern: hub-spoke, hub: c0, spokes: [b2, gw-x], type: gre, pool: 172.30.0.64/28, mtu: 1400}
"""

MIXED_WRITTEN_OUT = """\
name: mixed
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: core0, lan: 10.2.0.0/25, gateway: {name: c0, platform: vyos-1.4}}
  - {name: core1, lan: 10.2.0.128/25, gateway: {name: c1, platform: vyos-1.4}}
  - {name: core2, lan: 10.2.1.0/25, gateway: {name: c2, platform: vyos-1.4}}
  - {name: branch-x, lan: 10.9.0.0/24, gateway: gw-x, servers: [server-x]}
  - {name: br1, lan: 10.3.0.0/24, gateway: b1, servers: [a1, {name: db1, ifname: net1}]}
  - {name: br2, lan: 10.3.1.0/24, gateway: b2, servers: [a2, {name: db2, ifname: net1}]}
tunnels:
  - {endpoints: [b1, b2], subnet: 192.168.9.0/30, type: gre}
"""
# the mesh of all six gateways in site order: 15 /31s in address order
_MESH = ["c0", "c1", "c2", "gw-x", "b1", "b2"]
MIXED_WRITTEN_OUT += "".join(
    f"  - {{endpoints: [{a}, {b}], subnet: 172.31.0.{2 * k}/31}}\n"
    for k, (a, b) in enumerate((a, b) for i, a in enumerate(_MESH) for b in _MESH[i + 1:]))
MIXED_WRITTEN_OUT += """\
  - {endpoints: [c0, b2], subnet: 172.30.0.64/30, type: gre, mtu: 1400}
  - {endpoints: [c0, gw-x], subnet: 172.30.0.68/30, type: gre, mtu: 1400}
"""


def test_mixed_templates_mesh_and_hub_spoke_render_the_written_out_lab(tmp_path: Path) -> None:
    """Templates around a written-out site, an explicit tunnel, a /31 mesh and a hub-spoke with a
    spoke list, a type and an MTU: the same files as the lab written out by hand."""
    compact = _lab(tmp_path, MIXED, "a.yml")
    assert len(compact.tunnels) == 1 + 15 + 2
    assert _files(compact) == _files(_lab(tmp_path, MIXED_WRITTEN_OUT, "b.yml"))


def _shape(lab: Lab) -> tuple[object, ...]:
    """What a lab says, without where it was written."""
    sites = tuple((s.name, s.lan, s.gateway.name, s.gateway.platform, tuple(x.name for x in s.servers))
                  for s in lab.sites)
    tunnels = tuple((t.name, t.type, t.endpoints, t.subnet, t.mtu) for t in lab.tunnels)
    return lab.name, lab.underlay.subnet, sites, tunnels, lab.routing.type


def test_hub200_example_is_the_written_out_200_site_lab(tmp_path: Path) -> None:
    """docs/examples/hub200.yml expands to the 200 sites and 199 tunnels of docs/intent.md's carve
    order, the same lab as writing them out."""
    from .conftest import ROOT
    lines = ["name: hub200", "underlay: {subnet: 172.16.0.0/23}", "sites:",
             "  - {name: hub, lan: 10.0.0.0/24, gateway: gw-hub, servers: [server-hub]}"]
    lines += [f"  - {{name: spoke{n}, lan: 10.1.{n - 1}.0/24, gateway: gw{n}, servers: [server{n}]}}"
              for n in range(1, 200)]
    lines.append("tunnels:")
    lines += [f"  - {{endpoints: [gw-hub, gw{n}], subnet: 172.31.{(n - 1) * 2 // 256}.{(n - 1) * 2 % 256}/31, type: gre}}"
              for n in range(1, 200)]
    lines.append("routing: static")
    written = _lab(tmp_path, "\n".join(lines) + "\n", "written.yml")
    example = _lab(tmp_path, (ROOT / "docs" / "examples" / "hub200.yml").read_text(), "example.yml")
    assert _shape(example) == _shape(written)


def test_docs_show_the_hub200_example() -> None:
    """The intent in docs/intent.md's patterns section is docs/examples/hub200.yml (without its header)."""
    from .conftest import ROOT
    example = [ln for ln in (ROOT / "docs" / "examples" / "hub200.yml").read_text().splitlines()
               if not ln.startswith("#")]
    assert "```yaml\n" + "\n".join(example) + "\n```" in (ROOT / "docs" / "intent.md").read_text()
