"""The seed's part 2: the rendered per-gateway scripts, run in two namespaces standing for the two hosts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import netlink
from clabgen.dataplane import kernel_supports

from .labutil import lab_name, unique_lab, write_lab

pytestmark = pytest.mark.netns
if os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("ping"):
    pytest.skip("needs root, nsenter and ping", allow_module_level=True)


@pytest.fixture
def hosts() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by an underlay veth, as the seed's hosts .141 and .142 are by ens33."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"clabgen-t-{tag}-h1", f"clabgen-t-{tag}-h2"
    netlink.ns_create(a)
    netlink.ns_create(b)
    try:
        netlink.veth(a, "ens33", b, "ens33", 1500)
        netlink.configure(a, "ens33", addresses=[__import__("ipaddress").IPv4Interface("172.12.1.10/24")])
        netlink.configure(b, "ens33", addresses=[__import__("ipaddress").IPv4Interface("172.12.1.11/24")])
        yield a, b
    finally:
        netlink.ns_delete(a)
        netlink.ns_delete(b)


def _script(host: str, lab: Path, gw: str, *args: str) -> subprocess.CompletedProcess[str]:
    # nsenter --net keeps the host's mount namespace, so `ip netns add` inside the script is visible to all.
    env = {**os.environ, "CLABGEN_PYTHON": sys.executable}
    return subprocess.run(["nsenter", f"--net=/run/netns/{host}", "sh", str(lab / "linux" / f"{gw}.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def _leftovers(name: str, host: str) -> list[str]:
    left = [n for n in netlink.ns_list() if n.startswith(f"{name}-")]
    left += [link.ifname for link in netlink.links(host) if link.ifname not in ("lo", "ens33")]
    if Path(f"/run/clabgen/{name}-gw1-linux").exists():
        left.append("state dir")
    return left


def test_without_kernel_tunnel_it_says_so_and_undoes(tmp_path: Path, hosts: tuple[str, str]) -> None:
    if kernel_supports("ipip"):
        pytest.skip("this kernel has ipip; the no-module path cannot be shown here")
    lab = unique_lab(tmp_path, "ipip")
    result = _script(hosts[0], lab, "gw1", "up")
    assert result.returncode == 1
    assert "cannot create ipip tunnel tun0" in result.stderr and "--userspace" in result.stderr
    assert _leftovers(lab_name(lab), hosts[0]) == []


@pytest.mark.parametrize("name", ["ipip", "gre"])
def test_scripts_build_the_seed_part_two(name: str, tmp_path: Path, hosts: tuple[str, str]) -> None:
    lab = unique_lab(tmp_path, name)
    lname = lab_name(lab)
    mode = [] if kernel_supports(name) else ["--userspace"]
    try:
        for host, gw in zip(hosts, ("gw1", "gw2")):
            up = _script(host, lab, gw, "up", *mode)
            assert up.returncode == 0, up.stderr
        ping = subprocess.run(["ip", "netns", "exec", f"{lname}-server1", "ping", "-n", "-c", "1", "-W", "2", "10.1.8.10"],
                              capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "ttl=62" in ping.stdout
    finally:
        for host, gw in zip(hosts, ("gw1", "gw2")):
            assert _script(host, lab, gw, "down").returncode == 0
    for host in hosts:
        assert _leftovers(lname, host) == []
    assert not Path(f"/run/clabgen/{lname}-gw1-linux").exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"/run/clabgen/{lname}-" not in ps


@pytest.mark.parametrize("routing", ["ospf", "bgp"])
def test_scripts_run_frr_for_dynamic_routing(routing: str, tmp_path: Path, hosts: tuple[str, str]) -> None:
    """The hand-built equivalent of a routing lab: each host runs FRR with the config VyOS gives it."""
    if not os.access("/usr/lib/frr/zebra", os.X_OK):
        pytest.skip("needs FRR (make test installs Debian's frr)")
    import re
    import time
    text = (Path(__file__).parent.parent / "labs" / "ipip" / "intent.yml").read_text()
    lab = write_lab(tmp_path, re.sub(r"^routing: .*$", f"routing: {routing}", text, flags=re.M), tag="l")
    lname = lab_name(lab)
    mode = [] if kernel_supports("ipip") else ["--userspace"]
    try:
        for host, gw in zip(hosts, ("gw1", "gw2")):
            up = _script(host, lab, gw, "up", *mode)
            assert up.returncode == 0, up.stderr
        deadline = time.monotonic() + 40
        while True:
            ping = subprocess.run(["ip", "netns", "exec", f"{lname}-server1", "ping", "-n", "-c", "1", "-W", "1",
                                   "10.1.8.10"], capture_output=True, text=True)
            if ping.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "ttl=62" in ping.stdout
        routes = subprocess.run(["ip", "-n", hosts[0], "route"], capture_output=True, text=True).stdout
        assert f"10.1.8.0/24 via 1.1.1.2 dev tun0 proto {routing} metric 20" in routes, routes
    finally:
        for host, gw in zip(hosts, ("gw1", "gw2")):
            assert _script(host, lab, gw, "down").returncode == 0
    for host in hosts:
        assert _leftovers(lname, host) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"/run/clabgen/{lname}-" not in ps
    assert not any("zebra" in p for p in subprocess.run(["ip", "netns", "pids", hosts[0]], capture_output=True,
                                                         text=True).stdout.split())
