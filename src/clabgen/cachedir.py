"""Where clabgen keeps what it builds between runs (compiled fast path and BPF program, compiled
templates, image build contexts): $CLABGEN_CACHE_DIR, else $XDG_CACHE_HOME/clabgen (~/.cache/clabgen)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("CLABGEN_CACHE_DIR", Path(base) / "clabgen"))
