"""A hand-edited gateway config.boot, deployed through the CLI: an invalid line fails the deploy with
FILE:LINE before anything exists (netns and docker), a kernel refusal fails it with FILE:LINE and
rolls back, and a line VyOS accepts but the emulation does not model still deploys, listed as not
applied."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from clabgen.runtimes import state

from ..conftest import run_clabgen
from ..labutil import lab_name, residue, unique_lab

pytestmark = pytest.mark.netns

if os.geteuid() != 0 or not shutil.which("ping"):
    pytest.skip("needs root and ping (make test installs iputils-ping)", allow_module_level=True)


def gw1_config(lab: Path) -> Path:
    return (lab / "startup-conf" / "gw1.cfg").resolve()


def replace_line(cfg: Path, old: str, new: str) -> int:
    """Edit the one line holding `old`, as a user would; returns its line number."""
    lines = cfg.read_text().splitlines(keepends=True)
    found = [n for n, line in enumerate(lines) if old in line]
    assert len(found) == 1, (old, found)
    lines[found[0]] = lines[found[0]].replace(old, new)
    cfg.write_text("".join(lines))
    return found[0] + 1


def assert_nothing_left(lab: Path) -> None:
    name = lab_name(lab)
    assert residue(name) == []
    assert state.read(name) is None


@pytest.mark.parametrize("old,new,message", [
    ("address 10.1.5.1/24", "address 10.1.5.300/24",
     "interfaces ethernet eth1 address: invalid value '10.1.5.300/24': 10.1.5.300 is not an IPv4 or IPv6 address "
     "(VyOS accepts an IPv4 or IPv6 address/prefix, dhcp or dhcpv6)"),
    ("address 10.1.5.1/24", "address 10.1.5.1/99",
     "interfaces ethernet eth1 address: invalid value '10.1.5.1/99': prefix length 99 is out of range 0..32 "
     "(VyOS accepts an IPv4 or IPv6 address/prefix, dhcp or dhcpv6)"),
    ("encapsulation ipip", "encapsulation bogus",
     "interfaces tunnel tun0 encapsulation: invalid value 'bogus': not an encapsulation VyOS knows "
     "(VyOS 1.2 accepts gre, gre-bridge, ip6gre, ip6ip6, ipip, ipip6, sit)"),
])
def test_an_invalid_line_fails_the_deploy_at_file_line_before_anything_exists(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    lab = unique_lab(tmp_path, "ipip")
    cfg = gw1_config(lab)
    line = replace_line(cfg, old, new)
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    assert result.returncode == 2, result.stderr
    assert f"{cfg}:{line}: {message}\n" in result.stderr
    assert "Traceback" not in result.stderr and "rolling back" not in result.stderr   # nothing was created
    assert_nothing_left(lab)


def test_a_binary_config_fails_the_deploy_naming_the_file(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    cfg = gw1_config(lab)
    cfg.write_bytes(Path(sys.executable).resolve().read_bytes()[:4096])
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    assert result.returncode == 2, result.stderr
    assert f"{cfg}:1: not a text config.boot: byte 0x7f at offset 0 is a control character\n" in result.stderr
    assert "Traceback" not in result.stderr and "UnicodeDecodeError" not in result.stderr
    assert_nothing_left(lab)


def test_problems_in_several_gateways_are_reported_together(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    gw1, gw2 = gw1_config(lab), (lab / "startup-conf" / "gw2.cfg").resolve()
    a = replace_line(gw1, "address 10.1.5.1/24", "address 10.1.5.1/99")
    b = replace_line(gw2, "next-hop 1.1.1.1", "next-hop 1.1.1.x")
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    assert result.returncode == 2
    assert f"{gw1}:{a}: interfaces ethernet eth1 address: " in result.stderr
    assert f"{gw2}:{b}: protocols static route 10.1.5.0/24 next-hop: invalid value '1.1.1.x': " in result.stderr
    assert_nothing_left(lab)


def test_a_kernel_refusal_fails_the_deploy_at_file_line_and_rolls_back(tmp_path: Path) -> None:
    # sit is a valid VyOS 1.2 encapsulation the emulation does not model: tun0 is not created,
    # so the kernel refuses the route through it, and the error points at that route's next-hop.
    lab = unique_lab(tmp_path, "ipip")
    cfg = gw1_config(lab)
    replace_line(cfg, "encapsulation ipip", "encapsulation sit")
    hop = next(n for n, line in enumerate(cfg.read_text().splitlines(), start=1) if "next-hop 1.1.1.2" in line)
    result = run_clabgen("deploy", str(lab), "--runtime", "netns")
    assert result.returncode == 1, result.stderr
    assert (f"{cfg}:{hop}: protocols static route 10.1.8.0/24 next-hop: adding route 10.1.8.0/24 via 1.1.1.2: the "
            f"kernel refused it: Network is unreachable") in result.stderr
    assert "rolling back" in result.stderr and "Traceback" not in result.stderr
    assert_nothing_left(lab)


def test_a_line_vyos_accepts_but_the_emulation_does_not_model_still_deploys(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip")
    cfg = gw1_config(lab)
    replace_line(cfg, "    loopback lo {", "    ethernet eth3 {\n        address dhcp\n    }\n    loopback lo {")
    replace_line(cfg, "    static {", "    rip {\n        network 10.1.5.0/24\n    }\n    static {")
    try:
        result = run_clabgen("deploy", str(lab), "--runtime", "netns")
        assert result.returncode == 0, result.stderr
        assert "gw1: not applied (outside the emulated dataplane): interfaces ethernet eth3 address dhcp " \
               "(DHCP is not emulated)" in result.stderr
        assert "gw1: not applied (outside the emulated dataplane): protocols rip" in result.stderr
        assert "gw1: interface eth3 is configured but not connected in the topology" in result.stderr
        verified = run_clabgen("verify", str(lab))
        assert verified.returncode == 0, verified.stdout
    finally:
        assert run_clabgen("destroy", str(lab)).returncode == 0
    assert_nothing_left(lab)


def test_the_docker_runtime_checks_configs_before_it_talks_to_the_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No engine answers at this address: the config error must come first, and nothing is recorded.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    lab = unique_lab(tmp_path, "ipip")
    cfg = gw1_config(lab)
    line = replace_line(cfg, "encapsulation ipip", "encapsulation bogus")
    result = run_clabgen("deploy", str(lab), "--runtime", "docker")
    assert result.returncode == 2, result.stderr
    assert f"{cfg}:{line}: interfaces tunnel tun0 encapsulation: invalid value 'bogus': " in result.stderr
    assert "Docker engine" not in result.stderr and "Traceback" not in result.stderr
    assert_nothing_left(lab)
