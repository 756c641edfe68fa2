"""`clabgen init`: every pattern and size writes a commented intent that validates and renders as is."""

from __future__ import annotations

from pathlib import Path

import pytest

from clabgen import graph, intent, pipeline, plan, starter

from .conftest import run_clabgen

CASES = [("two-site", 2, "ipip", "static"), ("hub-spoke", 2, "gre", "static"), ("hub-spoke", 5, "ipip", "ospf"),
         ("hub-spoke", 12, "gre", "bgp"), ("mesh", 3, "ipip", "static"), ("mesh", 6, "gre", "ospf"),
         ("chain", 2, "ipip", "bgp"), ("chain", 4, "gre", "static"), ("chain", 7, "ipip", "ospf")]


@pytest.mark.parametrize("pattern, sites, tunnel, routing", CASES)
def test_starter_renders_as_is(pattern: str, sites: int, tunnel: str, routing: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph, "have_graphviz", lambda: False)   # the picture is tested elsewhere
    lab = tmp_path / f"{pattern}-{sites}"
    path = starter.write(lab, starter.intent_text(starter.lab_name(lab), pattern, sites, tunnel, routing))
    text = path.read_text()
    assert text.startswith(f"# Lab {pattern}-{sites}: ") and text.count("\n#") >= 3
    p = plan.build(intent.read_lab(path))
    assert len(p.sites) == sites and not p.warnings
    expected_tunnels = {"two-site": 1, "hub-spoke": sites - 1, "mesh": sites * (sites - 1) // 2, "chain": sites - 1}
    assert len(p.tunnels) == expected_tunnels[pattern] and {t.type for t in p.tunnels} == {tunnel}
    assert p.routing == routing
    servers = [n.name for n in p.servers]
    assert {(x.src, x.dst) for x in p.pings if x.kind == "server"} == {(a, b) for a in servers for b in servers if a != b}
    result = pipeline.render_intent(path)
    assert "expected.json" in [f.path for f in result.files]


def test_the_cli_writes_validates_and_refuses_to_overwrite(tmp_path: Path) -> None:
    lab = tmp_path / "Big_Hub 20"
    result = run_clabgen("init", str(lab), "--pattern", "hub-spoke", "--sites", "20")
    assert result.returncode == 0, result.stderr
    assert "name: big-hub-20\n" in (lab / "intent.yml").read_text()
    valid = run_clabgen("validate", str(lab / "intent.yml"))
    assert valid.returncode == 0 and "(41 nodes, 40 links, 19 tunnels)" in valid.stdout, valid.stderr
    before = (lab / "intent.yml").read_bytes()
    again = run_clabgen("init", str(lab), "--pattern", "mesh")
    assert again.returncode == 2 and f"{lab}/intent.yml: an intent is already there; not overwriting" in again.stderr
    assert (lab / "intent.yml").read_bytes() == before


def test_bad_options_are_listed_at_once(tmp_path: Path) -> None:
    result = run_clabgen("init", str(tmp_path / "x"), "--pattern", "ring", "--sites", "1", "--tunnel", "vxlan",
                         "--routing", "rip", "--platform", "junos")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "--pattern: unknown pattern 'ring' (valid: two-site, hub-spoke, mesh, chain)"
    assert "--tunnel: unknown tunnel type 'vxlan' (valid: ipip, gre, wireguard, ipsec)" in lines
    assert "--routing: unknown routing 'rip' (valid: static, ospf, bgp)" in lines
    assert any(line.startswith("--platform: unknown gateway platform 'junos'") for line in lines)
    assert not (tmp_path / "x").exists()
    for argv, message in ((["--pattern", "two-site", "--sites", "3"], "the two-site pattern has 2 sites, not 3"),
                          (["--pattern", "mesh", "--sites", "41"], "41 sites: the mesh pattern takes 2 to 40"),
                          (["--pattern", "chain", "--sites", "51"], "51 sites: the chain pattern takes 2 to 50")):
        bad = run_clabgen("init", str(tmp_path / "y"), *argv)
        assert bad.returncode == 2 and message in bad.stderr
