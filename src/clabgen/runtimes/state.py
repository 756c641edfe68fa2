"""Per-lab runtime state under /run/clabgen/<lab>/: which runtime deployed it, and what it made."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

RUN_DIR = Path(os.environ.get("CLABGEN_RUN_DIR", "/run/clabgen"))


def state_dir(lab: str) -> Path:
    return RUN_DIR / lab


def read(lab: str) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir(lab) / "state.json").read_text())
    except (OSError, ValueError):
        return None


def write(lab: str, data: dict[str, Any]) -> None:
    d = state_dir(lab)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "state.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, d / "state.json")


def remove(lab: str) -> bool:
    d = state_dir(lab)
    if not d.exists():
        return False
    shutil.rmtree(d, ignore_errors=True)
    try:
        RUN_DIR.rmdir()   # only when no other lab is up
    except OSError:
        pass
    return True
