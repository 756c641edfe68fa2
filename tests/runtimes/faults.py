"""Verify must fail, naming the check, when a running lab is broken: the same faults on every runtime.

A runtime's test module imports these tests and provides a `deployed` fixture (a deployed labs/ipip).
"""

from __future__ import annotations

from pathlib import Path

from clabgen import labops

from ..conftest import run_clabgen


def failed_checks(lab: Path) -> list[tuple[str, str, str]]:
    _, checks, _ = labops.verify(lab)
    return [(c.group, c.node, c.detail) for c in checks if not c.ok]


def test_verify_fails_when_a_route_is_deleted(deployed: Path) -> None:
    run_clabgen("exec", str(deployed), "gw1", "--", "ip", "route", "del", "10.1.8.0/24", check=True)
    failed = failed_checks(deployed)
    assert ("routes", "gw1", "missing: 10.1.8.0/24 via 1.1.1.2 dev tun0 proto static metric 20") in failed
    assert any(g == "ping" for g, _, _ in failed)
    assert run_clabgen("verify", str(deployed)).returncode == 1


def test_verify_fails_when_the_tunnel_mtu_changes(deployed: Path) -> None:
    run_clabgen("exec", str(deployed), "gw1", "--", "ip", "link", "set", "tun0", "mtu", "1400", check=True)
    assert ("tunnel", "gw1", "MTU 1400, expected 9480") in failed_checks(deployed)


def test_verify_fails_when_a_server_address_changes(deployed: Path) -> None:
    run_clabgen("exec", str(deployed), "server1", "--", "ip", "addr", "del", "10.1.5.10/24", "dev", "net0", check=True)
    run_clabgen("exec", str(deployed), "server1", "--", "ip", "addr", "add", "10.1.5.99/24", "dev", "net0", check=True)
    failed = failed_checks(deployed)
    assert any(g == "routes" and n == "server1" and "missing: 10.1.5.0/24 dev net0 proto kernel scope link src 10.1.5.10" in d
               for g, n, d in failed), failed
    assert any(g == "ping" and n == "server2" for g, n, _ in failed)
