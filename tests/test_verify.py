"""verify on running labs it had not seen: transit tunnels, other traffic, and a check that can fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import labops
from clabgen.contract import LabContract

from .labutil import CHAIN3, DUALHUB, lab_name, residue, write_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


def _deployed(tmp_path: Path, intent: str) -> Iterator[Path]:
    lab = write_lab(tmp_path, intent, tag="v")
    try:
        labops.deploy(lab, "netns")
        yield lab
    finally:
        labops.destroy(lab)
    assert residue(lab_name(lab)) == []


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Path]:
    yield from _deployed(tmp_path, CHAIN3)


@pytest.fixture
def dualhub(tmp_path: Path) -> Iterator[Path]:
    yield from _deployed(tmp_path, DUALHUB)


def _failed(lab: Path) -> list[str]:
    _, checks, _ = labops.verify(lab)
    return [f"{c.group} {c.node} {c.name}: {c.detail}" for c in checks if not c.ok]


def test_capture_on_a_transit_tunnel_passes(chain: Path) -> None:
    """a-b-c: the ping from a to c enters the b-c tunnel at b, after two routers (a and b)."""
    contract = LabContract.load(chain / "expected.json")
    transit = next(c for c in contract.captures if c.node == "gwb")
    assert (transit.lan_ttl, transit.tunnel_ttl) == (64, 62)
    assert _failed(chain) == []


def test_capture_on_a_dual_hub_lab_passes(dualhub: Path) -> None:
    contract = LabContract.load(dualhub / "expected.json")
    assert any(c.node.startswith("hub") and c.tunnel_ttl == 62 for c in contract.captures)
    assert _failed(dualhub) == []


def test_capture_ignores_a_users_own_pings_between_the_same_servers(chain: Path) -> None:
    name = lab_name(chain)
    flood = [subprocess.Popen(["ip", "netns", "exec", f"clab-{name}-{a}", "ping", "-q", "-i", "0.01", addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for a, addr in (("sa", "10.20.3.10"), ("sc", "10.20.1.10"), ("sa", "10.20.2.10"))]
    try:
        assert _failed(chain) == []
    finally:
        for p in flood:
            p.terminate()
            p.wait()


def test_capture_fails_when_the_predicted_ttl_is_wrong(chain: Path) -> None:
    """The TTL check can fail: tell verify the transit packet crossed one router only."""
    path = chain / "expected.json"
    data = json.loads(path.read_text())
    cap = next(c for c in data["captures"] if c["node"] == "gwb")
    cap["tunnel_ttl"] = 63
    path.write_text(json.dumps(data))
    failed = _failed(chain)
    assert any(f.startswith("capture gwb") and "inner TTL 62 on tun1 and 62 on eth2, expected 63" in f
               for f in failed), failed


def test_replies_are_awaited_on_descriptors_above_1024() -> None:
    """A 100-site verify holds over 1024 descriptors; select() cannot watch those (ValueError),
    verify's and trace's waits for a reply can."""
    import resource
    import socket

    from clabgen import trace, verify
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1600:
        pytest.skip(f"the descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1600), hard))
    a, b = socket.socketpair()
    high = socket.socket(fileno=os.dup2(a.fileno(), 1500))
    try:
        for readable in (verify._readable, trace._readable):
            assert not readable(high, 0.05)
            b.send(b"x")
            assert readable(high, 1.0)
            assert high.recv(1) == b"x"
    finally:
        high.close()
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
