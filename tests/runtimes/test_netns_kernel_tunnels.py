"""The netns runtime on a kernel that has ipip/gre: run inside user-mode-linux (a real Linux 6.1).

This machine's kernel has no tunnel modules, so `--tunnels auto` always picks the userspace
dataplane here. Users' kernels usually have them: this boots UML over the host's filesystem,
loads veth/ipip/ip_gre, and runs the real `clabgen deploy / verify / destroy` inside it, proving
that auto-detection picks the kernel's tunnels and that verify passes on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..dataplane.uml import _LOADER, UML, module_paths
from ..labutil import unique_lab

pytestmark = [pytest.mark.uml, pytest.mark.netns]
if UML is None:
    pytest.skip("user-mode-linux is not installed (make test installs it)", allow_module_level=True)


MODULES = ("drivers/net/veth.ko", "net/ipv4/ipip.ko", "net/ipv4/ip_gre.ko", "net/bridge/bridge.ko")


def _prologue(python: str) -> str:
    mods = " ".join(str(p) for m in MODULES for p in module_paths(f"kernel/{m}"))
    return f"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1 HOME=/run CLABGEN_DEBUG=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs run /run
{python} -S -c '{_LOADER}' {mods}
ip link set lo up
"""


def _boot(work: Path, script: str, umid: str) -> dict[str, str]:
    """Boot UML with `script` as PID 1 and return its console, cut into `== name` sections."""
    init = work / "init.sh"
    init.write_text(script)
    init.chmod(0o755)
    argv = [str(UML), "mem=384M", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro", f"init={init}",
            f"uml_dir={work}", f"umid={umid}", "noreboot", "con=null", "con0=null,fd:1"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=240,
                          env={**os.environ, "TMPDIR": str(work)}, start_new_session=True)
    console = proc.stdout.decode(errors="replace")
    parts = _sections(console)
    assert "end" in parts, console[-3000:]
    return parts


def _init(lab: Path, clabgen: str, python: str) -> str:
    return _prologue(python) + f"""echo "== deploy"
{clabgen} deploy {lab} --runtime netns --tunnels auto 2>&1 | cat
echo "== verify"
{clabgen} verify {lab} --json 2>/dev/null
echo "== destroy"
{clabgen} destroy {lab} 2>&1 | cat
echo "== left"
ip netns list
ls /run/clabgen 2>/dev/null
echo "== end"
echo o > /proc/sysrq-trigger
sleep 10
"""


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith("== "):
            current = line[3:].strip()
            out[current] = []
        elif current:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


@pytest.mark.parametrize("name", ["ipip", "gre"])
def test_kernel_tunnels_deploy_and_verify(name: str, tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, name)
    work = tmp_path / "uml"
    work.mkdir()
    parts = _boot(work, _init(lab, str(Path(sys.executable).parent / "clabgen"), sys.executable), f"clabgen-{lab.name}")
    assert "tun0 (kernel)" in parts["deploy"], parts["deploy"]
    assert "userspace" not in parts["deploy"]
    report = json.loads(parts["verify"][parts["verify"].index("{"):])
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed, failed
    tunnels = [c["detail"] for c in report["checks"] if c["group"] == "tunnel"]
    assert tunnels and all(d.startswith(f"kernel {name}, up, MTU {9480 if name == 'ipip' else 9476}") for d in tunnels)
    frame = 118 if name == "ipip" else 122
    assert any(f"eth2 {frame} B" in c["detail"] for c in report["checks"] if c["group"] == "capture")
    assert parts["left"].strip() == ""


def test_seed_part_two_scripts_with_kernel_tunnels(tmp_path: Path) -> None:
    """The seed's part 2 as written: `ip tunnel add ... mode ipip` on two hosts, ping answers ttl=62."""
    lab = unique_lab(tmp_path, "ipip")
    name = lab.name
    work = tmp_path / "uml"
    work.mkdir()
    script = _prologue(sys.executable) + f"""
ip netns add h1
ip netns add h2
ip -n h1 link add ens33 type veth peer name ens33 netns h2
ip -n h1 addr add 172.12.1.10/24 dev ens33
ip -n h2 addr add 172.12.1.11/24 dev ens33
ip -n h1 link set ens33 up
ip -n h2 link set ens33 up
echo "== up"
nsenter --net=/run/netns/h1 sh {lab}/linux/gw1.sh up 2>&1; echo "rc=$?"
nsenter --net=/run/netns/h2 sh {lab}/linux/gw2.sh up 2>&1; echo "rc=$?"
ip -n h1 -d link show tun0
echo "== ping"
ip netns exec {name}-server1 ping -n -c 1 -W 2 10.1.8.10
echo "== down"
nsenter --net=/run/netns/h1 sh {lab}/linux/gw1.sh down 2>&1; echo "rc=$?"
nsenter --net=/run/netns/h2 sh {lab}/linux/gw2.sh down 2>&1; echo "rc=$?"
ip netns del h1
ip netns del h2
echo "== left"
ip netns list
echo "== end"
echo o > /proc/sysrq-trigger
sleep 10
"""
    parts = _boot(work, script, f"clabgen-{name}-p2")
    assert parts["up"].count("rc=0") == 2, parts["up"]
    assert "ipip 172.12.1.10 peer 172.12.1.11" in parts["up"] or "link/ipip 172.12.1.10 peer 172.12.1.11" in parts["up"]
    assert "ttl=62" in parts["ping"], parts["ping"]
    assert parts["down"].count("rc=0") == 2
    assert parts["left"].strip() == ""
