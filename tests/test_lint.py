"""The code base stays free of unused imports, undefined names and similar slips (pyflakes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


def test_pyflakes_is_clean() -> None:
    pytest.importorskip("pyflakes")
    result = subprocess.run([sys.executable, "-m", "pyflakes", "src", "tests", "bench", "scripts"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
