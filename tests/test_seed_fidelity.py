"""The seed document's lab, reproduced exactly: configs, set listings, topology."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from clabgen import vyos_config

from .conftest import LABS, ROOT, SHARED

SEED = ROOT / "tests" / "data" / "seed"


@pytest.mark.parametrize("gw", ["gw1", "gw2"])
def test_set_listing_equals_seed_line_for_line(gw: str) -> None:
    ours = (LABS / "ipip" / "startup-conf" / f"{gw}.set").read_text().splitlines()
    seed = (SEED / f"{gw}.set").read_text().splitlines()
    assert ours == seed


@pytest.mark.parametrize("gw", ["gw1", "gw2"])
def test_config_boot_equals_seed(gw: str) -> None:
    assert (LABS / "ipip" / "startup-conf" / f"{gw}.cfg").read_text() == (SEED / f"{gw}.cfg").read_text()


def test_topology_loads_to_the_seed_data() -> None:
    ours = yaml.safe_load((LABS / "ipip" / "ipip.clab.yml").read_text())
    seed = yaml.safe_load((SEED / "ipip.clab.yml").read_text())
    assert ours == seed
    assert list(ours["topology"]["nodes"]) == list(seed["topology"]["nodes"])


def test_seed_fixtures_match_the_seed_document(tmp_path: Path) -> None:
    doc = SHARED / "seed" / "000_1f42ed51a86e9b1c.txt"
    if not doc.is_file():
        pytest.skip("the seed document is not beside the repo")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import extract_seed
    finally:
        sys.path.pop(0)
    for name, body in extract_seed.extract(doc.read_text(encoding="utf-8")).items():
        assert (SEED / name).read_text() == body, name


def test_seed_set_listing_is_the_seed_config_tree() -> None:
    for gw in ("gw1", "gw2"):
        assert vyos_config.same_tree((SEED / f"{gw}.cfg").read_text(), (SEED / f"{gw}.set").read_text()) == []
