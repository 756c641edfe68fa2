"""The command line itself: --version, one-line internal errors."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import clabgen
from clabgen import cli

from .conftest import LABS, ROOT, run_clabgen

INTENT = LABS / "ipip" / "intent.yml"
ONE_LINE = "clabgen: internal error: {} (set CLABGEN_DEBUG=1 for the traceback)"


def test_version() -> None:
    result = run_clabgen("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"clabgen {clabgen.__version__}\n"
    assert clabgen.__version__ == version("clabgen")


def test_main_leaves_the_excepthook_alone(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Typer's rich excepthook (frames with local variables) is never installed."""
    before = sys.excepthook
    monkeypatch.setattr(sys, "argv", ["clabgen", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"clabgen {clabgen.__version__}\n"
    assert sys.excepthook is before


# --- unexpected exceptions: a real fault injected into a real process, no hooks in the product ----

def _faulty_run(patch: str, argv: list[str], tmp_path: Path, debug: bool = False) -> subprocess.CompletedProcess[str]:
    """Run clabgen's main() in a fresh interpreter after `patch` broke one of its functions."""
    script = "\n".join([patch, "import sys", f"sys.argv = {['clabgen', *argv]!r}",
                        "from clabgen.cli import main", "main()"])
    env = {k: v for k, v in os.environ.items() if k not in ("CLABGEN_DEBUG", "_TYPER_STANDARD_TRACEBACK")}
    if debug:
        env["CLABGEN_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)


BREAK_RENDER = """
import clabgen.pipeline as p
def broken(*args, **kwargs):
    raise ValueError("boom\\nsecond line")
p.render_intent = broken
"""

BREAK_INSPECT = """
import clabgen.labops as labops
def broken(*args, **kwargs):
    raise RuntimeError("inspect fell over: /proc is odd\\nmore detail")
labops.inspect = broken
"""


def test_internal_error_is_one_line(tmp_path: Path) -> None:
    result = _faulty_run(BREAK_RENDER, ["render", str(INTENT)], tmp_path)
    assert result.returncode == 1
    assert result.stderr == ONE_LINE.format("ValueError: boom") + "\n"
    assert "Traceback" not in result.stderr and "locals" not in result.stderr
    assert result.stdout == ""


def test_internal_error_with_debug_shows_a_plain_traceback(tmp_path: Path) -> None:
    result = _faulty_run(BREAK_RENDER, ["render", str(INTENT)], tmp_path, debug=True)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "ValueError: boom" in lines and "second line" in lines
    assert lines[-1] == ONE_LINE.format("ValueError: boom")
    assert "locals" not in result.stderr and "╭" not in result.stderr


def test_internal_error_in_a_run_command(tmp_path: Path) -> None:
    result = _faulty_run(BREAK_INSPECT, ["inspect", str(LABS / "ipip")], tmp_path)
    assert result.returncode == 1
    assert result.stderr == ONE_LINE.format("RuntimeError: inspect fell over: /proc is odd") + "\n"


def test_ctrl_c_inside_a_command_says_interrupted(tmp_path: Path) -> None:
    patch = "import clabgen.pipeline as p\ndef broken(*a, **k):\n    raise KeyboardInterrupt\np.render_intent = broken"
    result = _faulty_run(patch, ["render", str(INTENT)], tmp_path)
    assert (result.returncode, result.stderr) == (130, "interrupted\n")


def test_user_errors_keep_their_format(tmp_path: Path) -> None:
    bad = ROOT / "tests" / "data" / "bad" / "yaml-tab.yml"
    result = run_clabgen("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:12:1: ")
    assert len(result.stderr.splitlines()) == 1 and "internal error" not in result.stderr
    usage = run_clabgen("render", cwd=tmp_path)
    assert usage.returncode == 2 and "Missing argument 'INTENT'" in usage.stderr
