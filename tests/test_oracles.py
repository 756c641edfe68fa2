"""Independent checkers built from upstream definitions: containerlab's schema, VyOS syntax per release."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clabgen import vyos_config

from .conftest import LABS, lab_dirs

CONFIGS = sorted(LABS.glob("*/startup-conf/*.cfg"))


def _release(cfg: Path) -> str:
    m = re.search(r"Release version: (\d\.\d)", cfg.read_text())
    assert m, f"{cfg}: no release footer"
    return m.group(1)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_vyos_syntax_oracle(cfg: Path, oracles: Path) -> None:
    result = subprocess.run([sys.executable, str(oracles / "vyos" / "vyos_syntax.py"), "--release", _release(cfg),
                             str(cfg), str(cfg.with_suffix(".set"))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_set_and_boot_are_one_tree(cfg: Path, oracles: Path) -> None:
    assert vyos_config.same_tree(cfg.read_text(), cfg.with_suffix(".set").read_text()) == []
    result = subprocess.run([sys.executable, str(oracles / "vyos" / "vyos_syntax.py"), "--same",
                             str(cfg), str(cfg.with_suffix(".set"))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("lab", lab_dirs(), ids=lambda p: p.name)
def test_containerlab_schema_and_predeploy_checks(lab: Path, oracles: Path) -> None:
    pytest.importorskip("jsonschema")
    (topo,) = lab.glob("*.clab.yml")
    result = subprocess.run([sys.executable, str(oracles / "clab" / "validate_topology.py"), str(topo)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout + result.stderr
