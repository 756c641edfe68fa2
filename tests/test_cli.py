"""The command line itself: --version, one-line internal errors, shell completion."""

from __future__ import annotations

import json
import os
import shutil
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


# --- shell completion through click/typer's own protocol ------------------------------------

def _complete(shell: str, words: str, cwd: Path) -> list[str]:
    """What the console script answers when bash or zsh asks to complete `words`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_CLABGEN")}
    env["_CLABGEN_COMPLETE"] = f"complete_{shell}"
    if shell == "bash":
        parts = words.split(" ")
        env.update(COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1))
    else:
        env["_TYPER_COMPLETE_ARGS"] = words
    exe = shutil.which("clabgen", path=str(Path(sys.executable).parent))
    assert exe, "the clabgen console script is not installed next to this python"
    result = subprocess.run([exe], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    if shell == "zsh":  # _arguments '*: :(("gw1"\n"gw2"))'  or  _files when there is nothing to offer
        out = result.stdout.strip()
        return [] if out == "_files" else [w.strip("\"'():*") for w in out.split("((", 1)[1].splitlines()]
    return result.stdout.split()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "rendered").mkdir()
    (tmp_path / "rendered" / "expected.json").write_text(json.dumps({"nodes": [{"name": "r1"}, {"name": "r2"}, {"name": "host"}]}))
    (tmp_path / "topo-only").mkdir()
    (tmp_path / "topo-only" / "x.clab.yml").write_text("name: x\n")
    (tmp_path / "plain-dir").mkdir()
    (tmp_path / "lab.yml").write_text("name: x\n")
    (tmp_path / "lab.clab.yml").write_text("name: x\n")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "expected.json").write_text('{"nodes": [1, 2')
    (tmp_path / "oldformat").mkdir()
    (tmp_path / "oldformat" / "expected.json").write_text('{"nodes": "r1"}')
    return tmp_path


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_lab_argument_completes_lab_dirs_and_intents(shell: str, workdir: Path) -> None:
    for command in ("deploy", "verify", "inspect", "destroy", "exec"):
        assert _complete(shell, f"clabgen {command} ", workdir) == \
            ["broken", "lab.yml", "oldformat", "rendered", "topo-only"]
    assert _complete(shell, "clabgen deploy r", workdir) == ["rendered"]
    assert _complete(shell, "clabgen deploy labs/ip", ROOT) == sorted(f"labs/{p.parent.name}" for p in
                                                                      LABS.glob("ip*/expected.json"))
    assert _complete(shell, "clabgen deploy labs/", ROOT) == sorted(f"labs/{p.parent.name}"
                                                                    for p in LABS.glob("*/expected.json"))
    assert _complete(shell, "clabgen deploy labs/ipip/", ROOT) == ["labs/ipip/intent.yml"]
    assert _complete(shell, "clabgen render ", workdir) == ["lab.yml"]
    assert _complete(shell, "clabgen deploy nowhere/", workdir) == []


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_node_argument_completes_node_names(shell: str, workdir: Path) -> None:
    nodes = [n["name"] for n in json.loads((LABS / "ipip" / "expected.json").read_text())["nodes"]]
    assert _complete(shell, "clabgen exec labs/ipip ", ROOT) == nodes
    assert _complete(shell, "clabgen exec labs/ipip/intent.yml gw", ROOT) == [n for n in nodes if n.startswith("gw")]
    assert _complete(shell, "clabgen exec rendered ", workdir) == ["r1", "r2", "host"]
    for unreadable in ("broken", "oldformat", "plain-dir", "no-such-dir"):
        assert _complete(shell, f"clabgen exec {unreadable} ", workdir) == []


def test_bash_completion_script_end_to_end(tmp_path: Path) -> None:
    """The script --show-completion prints, sourced into a real bash, completes node names."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    # Typer asks shellingham which shell runs us unless told not to; then the shell is an argument.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    zsh = subprocess.run(["clabgen", "--show-completion", "zsh"], env=env, capture_output=True, text=True)
    assert zsh.returncode == 0 and "_CLABGEN_COMPLETE=complete_zsh" in zsh.stdout, zsh.stderr
    shown = subprocess.run(["clabgen", "--show-completion", "bash"], env=env, capture_output=True, text=True)
    script = shown.stdout
    assert shown.returncode == 0 and "_CLABGEN_COMPLETE=complete_bash" in script, shown.stderr
    (tmp_path / "complete.bash").write_text(script)
    probe = f'source {tmp_path}/complete.bash; COMP_WORDS=(clabgen exec labs/ipip g); COMP_CWORD=3; ' \
            '_clabgen_completion clabgen; printf "%s\\n" "${COMPREPLY[@]}"'
    result = subprocess.run([bash, "--norc", "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.stdout.split() == ["gw1", "gw2"], result.stderr


# --- what deploy says about the userspace dataplane ------------------------------------------

def test_dataplane_impl_label(tmp_path: Path) -> None:
    from clabgen.dataplane import impl_label
    ready = tmp_path / "dataplane.ready"
    ready.write_text(json.dumps({"pid": 1, "impl": "c", "tunnels": []}))
    assert impl_label(tmp_path) == "C fast path"
    ready.write_text(json.dumps({"pid": 1, "impl": "python", "fallback": "no C compiler (gcc/cc) on PATH"}))
    assert impl_label(tmp_path) == "pure-Python fallback: no C compiler (gcc/cc) on PATH"
    ready.unlink()
    assert impl_label(tmp_path) == "pure-Python fallback: reason unknown"


@pytest.mark.parametrize("shell, script", [("bash", ".bash_completions/clabgen.sh"), ("zsh", ".zfunc/_clabgen")])
def test_install_completion_writes_into_home(shell: str, script: str, tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    exe = shutil.which("clabgen", path=str(Path(sys.executable).parent))
    result = subprocess.run([str(exe), "--install-completion", shell], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"_CLABGEN_COMPLETE=complete_{shell}" in (tmp_path / script).read_text()
    assert (tmp_path / f".{shell}rc").is_file()
