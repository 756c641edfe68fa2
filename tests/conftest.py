"""Shared fixtures: paths to the repo, its labs and the shared oracles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
SHARED = Path(os.environ.get("CLABGEN_SHARED", ROOT.parent / "shared"))
ORACLES = SHARED / "oracles"
# The patched containerlab `make containerlab` builds into the checkout (docs/containerlab.md).
if (ROOT / "bin" / "containerlab").is_file():
    os.environ.setdefault("CLABGEN_CONTAINERLAB", str(ROOT / "bin" / "containerlab"))
# The userspace WireGuard `make wireguard-go` builds (kernels without the wireguard module).
if (ROOT / "bin" / "wireguard-go").is_file():
    os.environ.setdefault("CLABGEN_WIREGUARD_GO", str(ROOT / "bin" / "wireguard-go"))


def lab_dirs() -> list[Path]:
    return sorted(p.parent for p in LABS.glob("*/intent.yml"))


@pytest.fixture
def oracles() -> Path:
    if not (ORACLES / "vyos" / "vyos_syntax.py").is_file():
        pytest.skip(f"the shared oracles are not here ({ORACLES}); they ship beside the repo, not in it")
    return ORACLES


def run_clabgen(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real console script as a user would."""
    exe = shutil.which("clabgen", path=str(Path(sys.executable).parent)) or "clabgen"
    return subprocess.run([exe, *args], cwd=cwd or ROOT, capture_output=True, text=True, check=check)


def docker_engine() -> object:
    """A client of the Docker engine, or a skip saying how to start one."""
    docker = pytest.importorskip("docker")
    try:
        c = docker.from_env(timeout=30)
        c.ping()
    except Exception as e:
        pytest.skip(f"no Docker engine answers ({type(e).__name__}); run `make docker-up`")
    return c
