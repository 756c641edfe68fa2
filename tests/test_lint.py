"""The code base stays lint-clean (pyflakes, ruff) and typed (mypy --strict on src/)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

TREES = ["src", "tests", "bench", "scripts"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True)


def test_pyflakes_is_clean() -> None:
    pytest.importorskip("pyflakes")
    result = _run("pyflakes", *TREES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    pytest.importorskip("ruff")
    result = _run("ruff", "check", "--no-cache", *TREES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_src() -> None:
    pytest.importorskip("mypy")
    result = _run("mypy", "--no-incremental", "src")
    assert result.returncode == 0, result.stdout + result.stderr
