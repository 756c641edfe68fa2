"""GRE over IPsec against a real kernel: labs/ipsec-gre's gw1 as clabgen runs it where the kernel has
no XFRM (userspace GRE + charon with kernel-libipsec, ESP in userspace) <-> gw2 played by Linux
6.1 in user-mode-linux (kernel GRE + charon with kernel-netlink: ESP in the kernel's XFRM).

Both charons are configured by clabgen from the lab's rendered VyOS configs (emu.crypto): gw1's
through crypto.start() exactly as a deploy does, gw2's swanctl.conf written for the guest with the
kernel backend. The guest kernel has no WireGuard (CONFIG_WIREGUARD is not set), so there is no
WireGuard counterpart of this test. Its crypto modules are loaded by hand (the host lends no
modprobe); ansi_cprng is its `stdrng` (jitterentropy does not load in UML), without which the
kernel cannot build the AES-GCM IV generator.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from clabgen import emu
from clabgen.dataplane import start, stop
from clabgen.emu import crypto

from ..conftest import LABS
from . import lab as L
from . import uml

pytestmark = [pytest.mark.uml, pytest.mark.netns,
              pytest.mark.skipif(uml.UML is None, reason="user-mode-linux (`linux`) not installed"),
              pytest.mark.skipif(not (os.access(crypto.CHARON_BIN, os.X_OK) and shutil.which("swanctl")),
                                 reason="strongSwan is missing (make deps)")]
OURS, KERNEL = "192.0.2.10", "192.0.2.11"          # labs/ipsec-gre: gw1, gw2
OUR_TUN, KERNEL_TUN, MTU = "172.31.1.1", "172.31.1.2", 1376
ETH = 14
XFRM_MODULES = ["kernel/net/xfrm/xfrm_user.ko", "kernel/net/ipv4/esp4.ko", "kernel/crypto/ghash-generic.ko",
                "kernel/crypto/ctr.ko", "kernel/crypto/gcm.ko", "kernel/crypto/seqiv.ko", "kernel/crypto/echainiv.ko",
                "kernel/crypto/hmac.ko", "kernel/crypto/ansi_cprng.ko", "kernel/net/ipv4/ip_gre.ko"]


def _modules() -> list[str]:
    out: list[str] = []
    for m in XFRM_MODULES:
        out += [str(p) for p in uml.module_paths(m) if str(p) not in out]
    return out


def _init(workdir: Path, python: str) -> str:
    """The guest's PID 1: gw2's underlay and GRE tunnel, charon with the kernel backend."""
    return f"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
cp {workdir}/strongswan.conf {workdir}/swanctl.conf /run/
mount -t tmpfs tmp /tmp
{python} -S -c '{uml._LOADER}' {' '.join(_modules())}
ip link set lo up
ip link set vec0 name eth2
ip link set eth2 mtu 1500 up
ip addr add {KERNEL}/24 dev eth2
ip tunnel add tun0 mode gre local {KERNEL} remote {OURS}
ip addr add {KERNEL_TUN}/30 dev tun0
ip link set tun0 mtu {MTU} up
export STRONGSWAN_CONF=/run/strongswan.conf
/usr/lib/ipsec/charon > /run/charon.out 2>&1 &
i=0; until swanctl --stats > /dev/null 2>&1; do i=$((i+1)); [ $i -gt 200 ] && break; sleep 0.05; done
swanctl --load-all --file /run/swanctl.conf > /dev/null 2>&1
echo "== guest-ready"
read -r go
echo "== guest-ping"
ping -n -c 3 -i 0.3 -W 2 {OUR_TUN}
echo "== guest-sas"
swanctl --list-sas --ike gw1
echo "== guest-xfrm"
ip xfrm state | grep -E "^src|proto esp|encap"
echo "== guest-log"
grep -E "IKE_SA|CHILD_SA|error|fail|NO_PROP|received packet|plugin" /run/charon.log | tail -12
tail -5 /run/charon.out
echo "== guest-done"
read -r go
echo o > /proc/sysrq-trigger
sleep 10
"""


@pytest.fixture
def host_ns() -> Iterator[str]:
    """gw1's side: one namespace with a tap named eth2 (gw1's underlay interface) for the guest."""
    if not L.CAN_RUN:
        pytest.skip("needs root, network namespaces and /dev/net/tun")
    name = f"clabgen-t-{secrets.token_hex(3)}-umlsec"
    netns.create(name)
    try:
        with IPRoute(netns=name) as ipr:
            ipr.link("add", ifname="eth2", kind="tuntap", mode="tap")
            idx = ipr.link_lookup(ifname="eth2")[0]
            ipr.addr("add", index=idx, address=OURS, prefixlen=24)
            ipr.link("set", index=idx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield name
    finally:
        out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
        for pid in out.split():         # charon, the kick helper
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        netns.remove(name)


def _boot(ns: str, workdir: Path) -> uml.Guest:
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
    init = workdir / "init.sh"
    init.write_text(_init(workdir, python))
    init.chmod(0o755)
    assert uml.UML is not None
    argv = ["ip", "netns", "exec", ns, uml.UML, "mem=192M", "root=/dev/root", "rootfstype=hostfs", "rootflags=/",
            "ro", f"init={init}", f"uml_dir={workdir}", f"umid={workdir.name}", "noreboot",
            "vec0:transport=tap,ifname=eth2,depth=128,gro=0,mtu=1500", "con=null", "con0=fd:0,fd:1"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "TMPDIR": str(workdir)})
    guest = uml.Guest(proc)

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            guest.lines.append(raw.decode(errors="replace").rstrip("\r\n"))

    threading.Thread(target=reader, daemon=True).start()
    return guest


def _say(guest: uml.Guest) -> None:
    try:
        assert guest.proc.stdin is not None
        guest.proc.stdin.write(b"go\n")
        guest.proc.stdin.flush()
    except OSError:
        pass


def _halt(guest: uml.Guest) -> None:
    _say(guest)
    try:
        guest.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(guest.proc.pid, signal.SIGKILL)
        guest.proc.wait()


def test_userspace_esp_and_kernel_xfrm_interoperate(host_ns: str, tmp_path: Path) -> None:
    vyos = emu.get("vyos")
    gw1 = vyos.load(LABS / "ipsec-gre" / "startup-conf" / "gw1.cfg")
    gw2 = vyos.load(LABS / "ipsec-gre" / "startup-conf" / "gw2.cfg")
    workdir = tmp_path / "uml"
    workdir.mkdir()
    for name, text in (("strongswan.conf", crypto._strongswan_conf(gw2, "kernel")),
                       ("swanctl.conf", crypto.swanctl_conf(gw2, "kernel"))):
        (workdir / name).write_text(text)
        (workdir / name).chmod(0o600)
    state = tmp_path / "state"
    run_dir = tmp_path / "gw1-run"
    spec = {"tunnels": [{"netns": host_ns, "ifname": "tun0", "mode": "gre", "local": OURS, "remote": KERNEL,
                         "address": f"{OUR_TUN}/30", "mtu": MTU}]}
    guest = _boot(host_ns, workdir)
    started = False
    try:
        guest.wait_for("== guest-ready", timeout=90)
        start(spec, state)
        started = True
        with L.capture(host_ns, "eth2") as cap:
            applied = crypto.start(host_ns, gw1, run_dir, backend="userspace")
            assert applied.ipsec == "kernel-libipsec"
            runner = crypto.Runner(host_ns, run_dir)
            swanctl = ["env", f"STRONGSWAN_CONF={crypto.STRONGSWAN_CONF}", "swanctl"]
            deadline = time.monotonic() + 30
            sas = ""
            while time.monotonic() < deadline:
                sas = runner.run([*swanctl, "--list-sas", "--ike", "gw2"]).stdout
                if "INSTALLED" in sas:
                    break
                time.sleep(0.2)
            ours = L.ping(host_ns, KERNEL_TUN)                 # userspace GRE + ESP -> kernel XFRM + GRE
            _say(guest)
            guest.wait_for("== guest-done", timeout=60)      # kernel -> userspace, both ways
        print("\n".join(guest.lines[-40:]))
    finally:
        _halt(guest)
        if started:
            stop(state)

    assert "ESTABLISHED" in sas and "INSTALLED" in sas and "TUNNEL-in-UDP" in sas, sas
    assert re.search(r"local\s+192\.0\.2\.10/32\[gre\]", sas), sas
    assert ours.returncode == 0 and " 0% packet loss" in ours.stdout, ours.stdout + ours.stderr
    guest_ping = guest.section("guest-ping")
    assert " 0% packet loss" in guest_ping, guest_ping
    guest_sas = guest.section("guest-sas")
    assert "ESTABLISHED" in guest_sas and "INSTALLED" in guest_sas, guest_sas
    assert "espinudp" in guest.section("guest-xfrm"), guest.section("guest-xfrm")   # the kernel's own ESP in UDP
    # The wire: between the two ends only IKE (UDP 500) and ESP/IKE in UDP 4500, never GRE or ICMP.
    between = [f[ETH:] for f in cap.frames if f[12:14] == b"\x08\x00"
               and {f[ETH + 12:ETH + 16], f[ETH + 16:ETH + 20]} == {socket.inet_aton(OURS), socket.inet_aton(KERNEL)}]
    protos = {p[9] for p in between}
    assert protos == {17}, protos
    ports = {(int.from_bytes(p[20:22], "big"), int.from_bytes(p[22:24], "big")) for p in between}
    assert ports <= {(500, 500), (4500, 4500)}, ports
    esp = [p for p in between if p[20:24] == b"\x11\x94\x11\x94" and p[28:32] != b"\0\0\0\0"]
    assert len([p for p in esp if p[12:16] == socket.inet_aton(OURS)]) >= 6      # 3 requests + 3 replies
    assert len([p for p in esp if p[12:16] == socket.inet_aton(KERNEL)]) >= 6
