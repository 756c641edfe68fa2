"""Output in a real terminal (tmux, 80 columns): nothing wider than the terminal, names whole;
piped output stays plain (one tab-separated line per check, no box drawing)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import labops

from .conftest import LABS, run_clabgen
from .labutil import lab_name, residue, unique_lab

if shutil.which("tmux") is None:
    pytest.skip("needs tmux (make test installs it)", allow_module_level=True)

COLUMNS = 80
BOX = set("─│┃━┏┓┗┛╭╮╰╯┼┬┴├┤")
BIN = Path(sys.executable).parent


def in_terminal(argv: list[str], cwd: Path, timeout: float = 240.0) -> list[str]:
    """Run argv in a detached tmux of 80x50 (its own server) and return every line it printed,
    wrapped lines joined again (so a line the terminal had to wrap shows as too long)."""
    server = f"clabgen-test-{uuid.uuid4().hex[:8]}"
    conf = cwd / f".{server}.conf"
    conf.write_text("set -g history-limit 50000\nset -g remain-on-exit on\n")
    marker = f"exit-{uuid.uuid4().hex[:6]}"
    script = cwd / f".{server}.sh"
    script.write_text(f"export PATH={shlex.quote(str(BIN))}:$PATH\ncd {shlex.quote(str(cwd))}\n"
                      f"{shlex.join(argv)}\necho {marker}=$?\n")
    tmux = ["tmux", "-L", server, "-f", str(conf)]
    try:
        subprocess.run([*tmux, "new-session", "-d", "-s", "t", "-x", str(COLUMNS), "-y", "50", "bash", str(script)],
                       check=True, env={**os.environ, "TERM": "xterm-256color"})
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-", "-t", "t"], capture_output=True,
                                  text=True).stdout
            if f"{marker}=" in text:
                break
            time.sleep(0.5)
        assert f"{marker}=" in text, f"no end marker after {timeout}s:\n{text[-2000:]}"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        conf.unlink(missing_ok=True)
        script.unlink(missing_ok=True)
    lines = [line.rstrip() for line in text.splitlines()]
    end = next(i for i, line in enumerate(lines) if line.startswith(f"{marker}="))
    return lines[:end + 1]   # then only the pane's blank rows and tmux's "Pane is dead" note


def too_wide(lines: list[str]) -> list[str]:
    return [line for line in lines if len(line) > COLUMNS]


@pytest.fixture(scope="module")
def ipip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("ping"):
        pytest.skip("needs root and ping")
    lab = unique_lab(tmp_path_factory.mktemp("term"), "ipip")
    try:
        labops.deploy(lab, "netns")
        yield lab
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []


def test_verify_fits_80_columns_with_whole_check_names(ipip: Path) -> None:
    lines = in_terminal(["clabgen", "verify", str(ipip)], ipip.parent)
    assert too_wide(lines) == [] and lines[-1].endswith("=0")
    checks = json.loads(run_clabgen("verify", str(ipip), "--json").stdout)["checks"]
    for c in checks:
        assert any(c["name"] in line for line in lines), f"check name cut: {c['name']}"
    assert any(line.startswith("check") and "detail" in line for line in lines)
    assert any(f"{len(checks)}/{len(checks)} checks passed" in line for line in lines)


def test_piped_verify_is_one_plain_line_per_check(ipip: Path) -> None:
    result = run_clabgen("verify", str(ipip))
    lines = result.stdout.splitlines()
    checks = json.loads(run_clabgen("verify", str(ipip), "--json").stdout)["checks"]
    assert len(lines) == len(checks) + 1 and not (set(result.stdout) & BOX)
    for line, c in zip(lines, checks):
        assert line.split("\t") == [c["group"], c["node"], c["name"], "pass", c["detail"]]
    assert "\x1b[" not in result.stdout + result.stderr


def test_trace_status_and_errors_fit_80_columns(ipip: Path, tmp_path: Path) -> None:
    for argv in (["clabgen", "trace", str(ipip), "server1", "server2", "--live"], ["clabgen", "status"],
                 ["clabgen", "inspect", str(ipip)],
                 ["clabgen", "validate", str(LABS.parent / "tests" / "data" / "bad" / "yaml-tab.yml")]):
        lines = in_terminal(argv, tmp_path)
        assert too_wide(lines) == [], argv


def test_capture_decode_wraps_in_a_terminal(ipip: Path, tmp_path: Path) -> None:
    import threading
    pinger = threading.Timer(3.0, lambda: run_clabgen("exec", str(ipip), "server1", "--", "ping", "-c", "1",
                                                      "10.1.8.10"))
    pinger.start()
    try:
        lines = in_terminal(["clabgen", "capture", str(ipip), "gw1", "eth2", "-c", "2", "--seconds", "20",
                             "--filter", "ip proto 4"], tmp_path)
    finally:
        pinger.join()
    assert too_wide(lines) == [] and lines[-1].endswith("=0"), "\n".join(lines)
    text = "\n".join(lines)
    assert "IP 172.12.1.10 > 172.12.1.11: IP 10.1.5.10 > 10.1.8.10: ICMP" in text
    assert "2 packets (236 bytes) captured" in text


@pytest.mark.slow
def test_deploy_of_a_20_site_lab_in_a_terminal(tmp_path: Path) -> None:
    """The starter hub-and-spoke of 20 sites (41 nodes): progress and notes wrapped to 80 columns.
    The capture is kept in the test's directory (deploy-80x50.txt) for a person to read."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    lab = tmp_path / "hub20"
    name = f"tt{uuid.uuid4().hex[:5]}-hub20"
    assert run_clabgen("init", str(lab), "--pattern", "hub-spoke", "--sites", "20", "--name", name).returncode == 0
    assert run_clabgen("render", str(lab / "intent.yml")).returncode == 0
    try:
        lines = in_terminal(["clabgen", "deploy", str(lab), "--runtime", "netns"], tmp_path, timeout=300)
        (tmp_path / "deploy-80x50.txt").write_text("\n".join(lines) + "\n")
        assert too_wide(lines) == [] and lines[-1].endswith("=0"), "\n".join(lines)
        assert "created 41 namespaces" in "\n".join(lines)
        assert any(line.startswith(f"deployed {name} (netns) in ") for line in lines)
        assert not any(set(line) & BOX for line in lines)   # the spinner is gone once it is done
    finally:
        run_clabgen("destroy", str(lab))
    assert residue(name) == []
