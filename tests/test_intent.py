"""intent.py/yamlpos.py/checks.py: bad intents fail with one exact `file:line:col: field: message`
line each (exit 2, no traceback, nothing written); good intents validate and derive as documented.

Every `tests/data/bad/<case>.yml` starts with `# expect: LINE:COL: field: message (hint)`, the first
line clabgen must print after the file name. The comment is line 1, so positions count it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clabgen import intent, plan

from .conftest import LABS, ROOT, lab_dirs, run_clabgen

BAD = ROOT / "tests" / "data" / "bad"
EXPECT = re.compile(r"^# expect: (?P<line>.+)$")
BAD_CASES = sorted(BAD.glob("*.yml"))
# a few cases also go through `render`, which must fail the same way and write nothing
RENDER_CASES = ("endpoint-missing", "yaml-python-tag", "tunnel-mtu-too-big", "unknown-key-top", "yaml-syntax-flow",
                "lan-too-small", "name-path-traversal")


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = EXPECT.match(first)
    assert m, f"{path.name}: the first line must be `# expect: LINE:COL: field: message`"
    return f"{path.relative_to(ROOT)}:{m['line']}"


def _assert_fails(result, expected_first_line: str) -> None:  # type: ignore[no-untyped-def]
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    assert result.returncode == 2, out
    lines = result.stderr.splitlines()
    assert lines, "no error printed"
    assert lines[0] == expected_first_line


def test_there_are_enough_bad_cases() -> None:
    assert len(BAD_CASES) >= 30


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda p: p.stem)
def test_bad_intent_validate(case: Path) -> None:
    _assert_fails(run_clabgen("validate", str(case.relative_to(ROOT))), _expected(case))


@pytest.mark.parametrize("name", RENDER_CASES)
def test_bad_intent_render_writes_nothing(name: str, tmp_path: Path) -> None:
    case = BAD / f"{name}.yml"
    out = tmp_path / "out"
    _assert_fails(run_clabgen("render", str(case.relative_to(ROOT)), "--out", str(out)), _expected(case))
    assert not out.exists() or not any(out.iterdir())
    assert {p.name for p in tmp_path.iterdir()} <= {"out"}


def test_every_problem_line_has_a_position() -> None:
    """All problems, not just the first, point into the file (a case with several problems)."""
    result = run_clabgen("validate", "tests/data/bad/dup-node-gateways.yml")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) >= 2
    for line in lines:
        assert re.match(r"^tests/data/bad/dup-node-gateways\.yml:\d+:\d+: ", line), line


def test_problems_are_in_file_order() -> None:
    result = run_clabgen("validate", "tests/data/bad/dup-node-gateways.yml")
    positions = [tuple(map(int, re.match(r"^[^:]+:(\d+):(\d+):", link).groups()))  # type: ignore[union-attr]
                 for link in result.stderr.splitlines()]
    assert positions == sorted(positions)


def test_python_tag_runs_nothing() -> None:
    marker = Path("/tmp/clabgen-pwned")
    existed = marker.exists()
    run_clabgen("validate", "tests/data/bad/yaml-python-tag.yml")
    run_clabgen("validate", "tests/data/bad/yaml-python-tag-top.yml")
    assert marker.exists() == existed


@pytest.mark.parametrize("text, message", [
    ("", "1:1: the file is empty; expected a mapping with name, underlay and sites"),
    ("\n\n", "1:1: the file is empty; expected a mapping with name, underlay and sites"),
    ("---\n", "1:1: the file holds no YAML value; expected a mapping with name, underlay and sites"),
    ("name: lab\n---\nname: b\n", "2:1: a second YAML document (an intent file holds exactly one document; remove the `---`)"),
    ("name: 'lab\n", "2:1: YAML syntax error: found unexpected end of stream (while scanning a quoted scalar at line 1, column 7)"),
    ("name: *nope\n", "1:7: YAML syntax error: found undefined alias 'nope'"),
], ids=["empty", "blank-lines", "only-document-marker", "two-documents", "open-quote", "undefined-alias"])
def test_degenerate_files(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "intent.yml"
    path.write_text(text, encoding="utf-8")
    _assert_fails(run_clabgen("validate", str(path)), f"{path}:{message}")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "intent.yml"
    path.write_bytes(b"name: lab\nunderlay: \xff\n")
    _assert_fails(run_clabgen("validate", str(path)), f"{path}:2:11: not UTF-8 text (byte 0xff)")


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefg", "bcdefgh"):
        rows.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "intent.yml"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run_clabgen("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the document has more than 100000 values" in result.stderr.splitlines()[0]


def test_nonexistent_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "intent.yml"
    _assert_fails(run_clabgen("validate", str(missing)), f"{missing}: no such file")
    out = tmp_path / "out"
    _assert_fails(run_clabgen("render", str(missing), "--out", str(out)), f"{missing}: no such file")
    assert not out.exists()


def test_directory_instead_of_file(tmp_path: Path) -> None:
    _assert_fails(run_clabgen("validate", str(tmp_path)), f"{tmp_path}: is a directory, not an intent file")


# --- good intents ----------------------------------------------------------------------------

@pytest.mark.parametrize("lab", lab_dirs(), ids=lambda p: p.name)
def test_checked_in_intents_validate(lab: Path) -> None:
    result = run_clabgen("validate", str((lab / "intent.yml").relative_to(ROOT)))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith(f"labs/{lab.name}/intent.yml: ok (")


HUB3 = (LABS / "hub3" / "intent.yml").read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intent.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_hub_and_spoke_renders_and_spokes_route_via_the_hub(tmp_path: Path) -> None:
    path = _write(tmp_path, HUB3)
    result = run_clabgen("render", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "hub3.clab.yml").is_file()
    p = plan.build(intent.read_lab(path))
    routes = {n.name: {str(r.prefix): (str(r.next_hop), r.dev) for r in n.static_routes} for n in p.gateways}
    assert routes["gw1"] == {"10.1.1.0/24": ("1.1.1.1", "tun0"), "10.1.3.0/24": ("1.1.1.1", "tun0")}
    assert routes["gw2"] == {"10.1.1.0/24": ("1.1.2.1", "tun0"), "10.1.2.0/24": ("1.1.2.1", "tun0")}
    assert routes["gw-hub"] == {"10.1.2.0/24": ("1.1.1.2", "tun0"), "10.1.3.0/24": ("1.1.2.2", "tun1")}
    assert [t.type for t in p.tunnels] == ["ipip", "gre"]
    assert not p.warnings
    # three gateways share the underlay: a bridge node joins them
    assert "sw-underlay" in {n.name for n in p.nodes}


def test_three_servers_get_a_switch(tmp_path: Path) -> None:
    text = HUB3.replace("servers: [server1]", "servers: [server1, server3, server4]")
    p = plan.build(intent.read_lab(_write(tmp_path, text)))
    sw = p.node("sw-spoke1")
    assert sw.role == "switch"
    assert sorted(i.peer for i in sw.interfaces) == ["gw1:eth1", "server1:net0", "server3:net0", "server4:net0"]
    assert p.node("server3").iface("net0").peer == "sw-spoke1:eth3"
    # a LAN of two members stays one veth
    assert "sw-spoke2" not in {n.name for n in p.nodes}


def test_explicit_addresses_override_and_derived_skip_them(tmp_path: Path) -> None:
    text = HUB3.replace(
        "    gateway: gw1\n    servers: [server1]",
        "    gateway: {name: gw1, address: 10.1.2.10, underlay_address: 172.12.1.10}\n"
        "    servers:\n      - server1\n      - {name: server3, address: 10.1.2.11}\n      - server4")
    p = plan.build(intent.read_lab(_write(tmp_path, text)))
    assert str(p.node("gw1").iface("eth1").address) == "10.1.2.10/24"     # explicit, not .1
    assert str(p.node("server1").address) == "10.1.2.12"                   # .10 and .11 are taken
    assert str(p.node("server3").address) == "10.1.2.11"
    assert str(p.node("server4").address) == "10.1.2.13"
    assert str(p.node("gw1").iface("eth2").address) == "172.12.1.10/24"
    assert str(p.node("gw-hub").iface("eth2").address) == "172.12.1.11/24"  # derived skips .10
    assert str(p.node("gw2").iface("eth2").address) == "172.12.1.12/24"
    assert p.node("server1").gateway is not None and str(p.node("server1").gateway) == "10.1.2.10"


def test_read_lab_keeps_positions(tmp_path: Path) -> None:
    lab = intent.read_lab(LABS / "ipip" / "intent.yml", "ipip.yml")
    site2 = lab.sites[1]
    assert (site2.at("lan").file, site2.at("lan").line, site2.at("lan").field) == ("ipip.yml", 14, "sites[1].lan")
    assert lab.tunnels[0].at("endpoints[1]").col > lab.tunnels[0].at("endpoints[0]").col
