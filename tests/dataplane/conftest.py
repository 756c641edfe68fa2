"""Fixtures that build real namespaces and always take them down again."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen.dataplane.nsenter import NETNS_RUN_DIR

from . import lab as labmod


@pytest.fixture
def lab() -> Iterator[labmod.Lab]:
    if not labmod.CAN_RUN:
        pytest.skip("needs root, network namespaces and /dev/net/tun")
    if shutil.which("ping") is None:
        pytest.skip("ping (iputils-ping) missing: `make deps` installs it")
    built = labmod.build()
    try:
        yield built
    finally:
        labmod.destroy(built)
        left = [p.name for p in NETNS_RUN_DIR.glob(f"{built.prefix}-*")] if NETNS_RUN_DIR.exists() else []
        assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    from clabgen.dataplane import stop

    path = tmp_path / "state"
    try:
        yield path
    finally:
        stop(path)

