"""yamlpos's libyaml fast path reads every intent exactly as the ruamel path does: the same values,
positions and key positions, or it steps aside (None) and ruamel reads it, errors included."""

from __future__ import annotations

from pathlib import Path

import pytest

from clabgen import yaml_roundtrip, yamlpos

from .conftest import ROOT

INTENTS = sorted([*ROOT.glob("labs/*/intent.yml"), *ROOT.glob("tests/data/bad/*.yml"),
                  *ROOT.glob("docs/examples/*.yml"), *ROOT.glob("tests/data/**/*.yml")])
EXTRA = {
    "empty-values": "name: x\nunderlay:\nsites:\n  - {name: a, lan: 10.0.0.0/24}\n  - name: b\n    servers: []\n",
    "nulls-and-bools": "a: null\nb: ~\nc: true\nd: False\ne: 0\nf: -12\ng: '007'\nh: \"9500\"\n",
    "next-line-null": "a:\n  null\nb: x\n",
    "floats": "mtu: 1500.0\n",
    "octal": "mtu: 0o17\n",
    "yes-no": "a: yes\nb: no\nc: on\n",
    "dates": "when: 2001-12-14\n",
    "dup": "a: 1\na: 2\n",
    "anchor": "a: &x {b: 1}\nc: *x\n",
    "block": "desc: |\n  two\n  lines\nname: x\n",
}


@pytest.mark.parametrize("path", INTENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_fast_path_reads_like_ruamel(path: Path) -> None:
    _same(path.read_text(encoding="utf-8", errors="replace"), str(path))


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_fast_path_edge_cases(name: str) -> None:
    _same(EXTRA[name], name)


def _same(text: str, file: str) -> None:
    fast = yamlpos._fast(text, file)
    try:
        slow = yaml_roundtrip.load_roundtrip(text, file)
    except yamlpos.ClabgenError:
        assert fast is None, "ruamel refuses this document; the fast path must not accept it"
        return
    if fast is not None:
        assert fast == slow


def test_a_written_out_lab_takes_the_fast_path() -> None:
    text = (ROOT / "labs" / "hub3" / "intent.yml").read_text()
    assert yamlpos._fast(text, "hub3") is not None
