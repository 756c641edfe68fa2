"""A real Linux kernel as a tunnel peer: user-mode-linux (Debian's `linux`, 6.1) in a namespace.

The host kernel here has no ipip/gre modules; UML's kernel does (/usr/lib/uml/modules). The guest
boots the host's own root filesystem read-only over hostfs, runs a generated init script that
loads the tunnel modules, configures `ip tunnel add ... mode ipip|gre` with the defaults clabgen
users get, pings our userspace endpoint, prints what it saw, and powers off when its console
(our pipe) gives it a line.
Its NIC is a vector/tap device: frames it sends enter the namespace as if received on the tap.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

UML = shutil.which("linux")
MODULES = Path("/usr/lib/uml/modules")
GUEST_MODULES = {"ipip": "kernel/net/ipv4/ipip.ko", "gre": "kernel/net/ipv4/ip_gre.ko"}
FINIT_MODULE = 313  # x86_64 syscall number: the host has no insmod (kmod) to lend the guest

_LOADER = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    if libc.syscall({FINIT_MODULE}, fd, b"", 0) != 0 and ctypes.get_errno() != 17:
        print("insmod failed", path, os.strerror(ctypes.get_errno()), flush=True)
    os.close(fd)
"""


# TCP echo on the guest's tunnel address: everything the host sends comes back, then EOF.
ECHO_PORT = 5001
_ECHO = f"""
import socket, sys
srv = socket.create_server((sys.argv[1], {ECHO_PORT}))
print("== echo-listening", flush=True)
conn, _ = srv.accept()
while chunk := conn.recv(1 << 20):
    conn.sendall(chunk)
conn.close()
"""


@dataclass(frozen=True)
class GuestTunnel:
    """The kernel end: eth0 address, tunnel mode, ends and the address on the tunnel."""

    mode: str
    eth_addr: str  # "172.12.1.11/24"
    local: str
    remote: str
    tun_addr: str  # "1.1.1.2/24"
    mtu: int
    ping: str  # where the guest pings (our userspace end)
    ping_ttl: int


@dataclass
class Guest:
    """A running UML; console lines are collected as they come."""

    proc: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(marker in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise TimeoutError(f"UML guest never printed {marker!r}; console tail:\n" + "\n".join(self.lines[-40:]))

    def section(self, name: str) -> str:
        """Console text between '== name' and the next '== ' marker."""
        out, inside = [], False
        for line in self.lines:
            if line.startswith("== "):
                inside = line.strip() == f"== {name}"
                continue
            if inside:
                out.append(line)
        return "\n".join(out)


def module_paths(module: str) -> list[Path]:
    """The module and what it needs, dependencies first, from modules.dep (modprobe's job)."""
    versions = sorted(MODULES.iterdir()) if MODULES.is_dir() else []
    if not versions:
        raise FileNotFoundError(f"no UML modules under {MODULES}")
    root = versions[-1]
    deps = {}
    for line in (root / "modules.dep").read_text().splitlines():
        name, _, rest = line.partition(":")
        deps[name] = rest.split()
    order: list[str] = []

    def visit(name: str) -> None:
        for dep in deps.get(name, []):
            visit(dep)
        if name not in order:
            order.append(name)

    visit(module)
    return [root / name for name in order]


def init_script(t: GuestTunnel, python: str) -> str:
    """The guest's PID 1: argv lists only, no values from outside the test."""
    mods = " ".join(str(p) for p in module_paths(GUEST_MODULES[t.mode]))
    return f"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
{python} -S -c '{_LOADER}' {mods}
ip link set lo up

ip link set vec0 mtu 9500 up
ip addr add {t.eth_addr} dev vec0
ip tunnel add tun0 mode {t.mode} local {t.local} remote {t.remote}
ip addr add {t.tun_addr} dev tun0
ip link set tun0 mtu {t.mtu} up
echo "== link"
ip -d link show tun0
echo "== guest-ping"
ping -n -c 3 -i 0.2 -W 2 -t {t.ping_ttl} {t.ping}
{python} -S -c '{_ECHO}' {t.tun_addr.split("/")[0]} &
echo "== guest-pinged"
read -r go
echo o > /proc/sysrq-trigger
sleep 10
"""


@contextmanager
def boot(netns: str, tap: str, tunnel: GuestTunnel, workdir: Path) -> Iterator[Guest]:
    """Boot UML inside netns on an existing tap; always power it off (or kill it) afterwards."""
    if UML is None:
        raise FileNotFoundError("user-mode-linux's `linux` binary is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    init = workdir / "init.sh"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    init.write_text(init_script(tunnel, python))
    init.chmod(0o755)
    argv = ["ip", "netns", "exec", netns, UML, "mem=128M", "root=/dev/root", "rootfstype=hostfs", "rootflags=/",
            "ro", f"init={init}", f"uml_dir={workdir}", f"umid={workdir.name}", "noreboot",
            f"vec0:transport=tap,ifname={tap},depth=128,gro=0,mtu=9500", "con=null", "con0=fd:0,fd:1"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "TMPDIR": str(workdir)})
    guest = Guest(proc)

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            guest.lines.append(raw.decode(errors="replace").rstrip("\r\n"))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        yield guest
    finally:
        try:  # the guest waits on its console for a line, then powers off
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        thread.join(timeout=5)
