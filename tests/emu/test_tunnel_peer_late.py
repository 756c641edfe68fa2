"""A userspace tunnel end that sends before its peer's end exists: the peer's kernel answers
`protocol unreachable`, which lands on the raw socket as ENOPROTOOPT. Routing daemons do exactly
that when containers boot one by one (OSPF hellos from the first gateway); the tunnel must keep
forwarding, as the kernel's own tunnel does, once the peer comes up."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen.dataplane import ready_info, running_pid, start, stop

from ..dataplane import lab as L
from ..dataplane.test_dataplane import IMPLS

pytestmark = pytest.mark.netns


@pytest.fixture
def dp_lab() -> Iterator[L.Lab]:
    if not L.CAN_RUN or shutil.which("ping") is None:
        pytest.skip("needs root, network namespaces, /dev/net/tun and ping")
    built = L.build()
    try:
        yield built
    finally:
        L.destroy(built)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_tunnel_end_survives_protocol_unreachable_from_a_peer_not_up_yet(dp_lab: L.Lab, tmp_path: Path,
                                                                           impl: str) -> None:
    lab = dp_lab
    gw1_end, gw2_end = lab.tunnel_spec("ipip")["tunnels"]  # type: ignore[misc]
    first, second = tmp_path / "gw1", tmp_path / "gw2"
    try:
        start({"tunnels": [gw1_end]}, first, impl=impl)
        subprocess.run(["ip", "-n", lab.ns("gw1"), "route", "replace", "10.0.2.0/24", "via", "1.1.1.2", "dev", "tun0"],
                       check=True)
        assert lab.ping("s1", L.S2, count=2).returncode != 0    # gw2 answers: protocol unreachable
        time.sleep(0.3)
        assert running_pid(first), (first / "dataplane.log").read_text()
        start({"tunnels": [gw2_end]}, second, impl=impl)
        subprocess.run(["ip", "-n", lab.ns("gw2"), "route", "replace", "10.0.1.0/24", "via", "1.1.1.1", "dev", "tun0"],
                       check=True)
        answer = lab.ping("s1", L.S2)
        assert answer.returncode == 0, answer.stdout + (first / "dataplane.log").read_text()
        assert ready_info(first)["impl"] == impl     # type: ignore[index]
    finally:
        stop(first)
        stop(second)
