"""Run one node's FRR daemons (zebra, staticd, bfdd, ospfd, bgpd as its config needs).

On the netns runtime every file FRR writes must stay under the lab's state directory, and FRR
writes some at fixed paths (ospfd puts /var/run/frr/ospfd-gr.json there whatever -N or the socket
options say). So the daemons run in the gateway's network namespace *and* in a private mount
namespace (`ip netns exec` makes one) in which the node's directory is bind-mounted over /run:
FRR's own defaults (/run/frr for sockets, pid files, graceful-restart state) then land in
<state>/frr/<node>/frr, and configs and logs are given as /run/conf/... and /run/log/... paths.
A container (the docker runtime's vyos-emu image, emu/boot.py) has its own /run and /etc, so FRR
runs there with its standard paths.

The daemons drop to frr:frr (root is not in the frrvty group, so FRR will not keep root), hence
the directories they write belong to frr. -P 0: no TCP vty; vtysh reaches them through their
unix sockets (`vtysh --vty_socket DIR`), from the host too. Started with -d, each daemon returns
once it has read its config, so starting them in order (zebra first) is enough.
Stopping: SIGKILL (destroy deletes the namespace anyway; FRR's own shutdown takes seconds).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FRR_BIN = Path(os.environ.get("CLABGEN_FRR_DIR", "/usr/lib/frr"))
USER = "frr"
START_TIMEOUT = 30.0


class FrrError(RuntimeError):
    """FRR is missing or a daemon did not start; the message says which and why."""


@dataclass(frozen=True)
class FrrDirs:
    """Where a node's FRR files are. host: the node's directory on the host, bind-mounted over /run
    for the daemons; None in a container, where FRR's standard paths are used."""

    host: Path | None

    def conf(self, daemon: str) -> Path:
        """A daemon's config file as the daemon sees it."""
        return Path("/run/conf" if self.host else "/etc/frr") / f"{daemon}.conf"

    def log(self, daemon: str) -> Path:
        return Path("/run/log" if self.host else "/var/log/frr") / f"{daemon}.log"

    def pid(self, daemon: str) -> Path:
        return Path("/run/frr") / f"{daemon}.pid"

    def outside(self, inside: Path) -> Path:
        """A path the daemons see, as this process sees it."""
        if self.host is None:
            return inside
        return self.host / inside.relative_to("/run")

    @property
    def sockets(self) -> Path:
        """The directory of the daemons' vty sockets, for `vtysh --vty_socket`."""
        return self.outside(Path("/run/frr"))

    def argv(self, daemon: str) -> list[str]:
        return [str(FRR_BIN / daemon), "-d", "-f", str(self.conf(daemon)), "-i", str(self.pid(daemon)),
                "--log", f"file:{self.log(daemon)}", "-P", "0", "-u", USER, "-g", USER]


def missing(daemons: tuple[str, ...]) -> list[str]:
    """Why these daemons cannot run on this machine (empty when they can)."""
    absent = [d for d in daemons if not os.access(FRR_BIN / d, os.X_OK)]
    out = []
    if absent:
        out.append(f"FRR is not installed ({', '.join(str(FRR_BIN / d) for d in absent)} missing)")
    if daemons and not shutil.which("vtysh"):
        out.append("vtysh (FRR) is not installed")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        if daemons:
            out.append(f"no user {USER!r} (the FRR package creates it)")
    return out


def write(dirs: FrrDirs, configs: dict[str, str]) -> None:
    """The daemons' configs and the directories they write, owned by frr."""
    made = [dirs.outside(Path("/run/frr")), dirs.outside(dirs.conf("zebra")).parent,
            dirs.outside(dirs.log("zebra")).parent]
    if dirs.host is not None:
        made.insert(0, dirs.host)
    for d in made:
        d.mkdir(parents=True, exist_ok=True)
        shutil.chown(d, USER, USER)
    for daemon, text in configs.items():
        path = dirs.outside(dirs.conf(daemon))
        path.write_text(text)
        shutil.chown(path, USER, USER)
        path.chmod(0o640)


def start(ns: str | None, dirs: FrrDirs, configs: dict[str, str], order: tuple[str, ...]) -> dict[str, int]:
    """Write the configs and start the daemons in `order`; daemon -> pid. FrrError names the
    daemon that failed and what it said."""
    problems = missing(order)
    if problems:
        raise FrrError("; ".join(problems))
    write(dirs, configs)
    if dirs.host is not None:
        # In the namespace, through a helper that bind-mounts the node's directory over /run first.
        argv = [sys.executable, "-m", "clabgen.emu.frrd", str(dirs.host), *order]
        if ns is not None:
            argv = ["ip", "netns", "exec", ns, *argv]
        else:
            argv = ["unshare", "--mount", "--propagation", "private", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise FrrError(result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}")
    else:
        run_daemons(dirs, order)
    return pids(dirs, order)


def run_daemons(dirs: FrrDirs, order: tuple[str, ...]) -> None:
    for daemon in order:
        try:
            result = subprocess.run(dirs.argv(daemon), capture_output=True, text=True, timeout=START_TIMEOUT,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FrrError(f"{daemon} did not start within {START_TIMEOUT:.0f}s") from None
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise FrrError(f"{daemon} exited with status {result.returncode}: {' / '.join(said[-3:])} "
                           f"(log: {dirs.outside(dirs.log(daemon))})")


def pids(dirs: FrrDirs, order: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for daemon in order:
        try:
            out[daemon] = int(dirs.outside(dirs.pid(daemon)).read_text().strip())
        except (OSError, ValueError):
            continue
    return out


def kill(dirs: FrrDirs, order: tuple[str, ...]) -> list[int]:
    """SIGKILL the daemons by their pid files; the pids signalled."""
    hit = []
    for pid in pids(dirs, order).values():
        try:
            os.kill(pid, signal.SIGKILL)
            hit.append(pid)
        except ProcessLookupError:
            pass
    return hit


def vtysh_argv(dirs: FrrDirs) -> list[str]:
    """vtysh talking to this node's daemons (their sockets are files: it works from the host too)."""
    return ["vtysh"] if dirs.host is None else ["vtysh", "--vty_socket", str(dirs.sockets)]


def main(argv: list[str]) -> int:
    """`python -m clabgen.emu.frrd NODE_DIR DAEMON...`, run in the node's namespaces by start()."""
    host, order = Path(argv[1]), tuple(argv[2:])
    mounted = subprocess.run(["mount", "--bind", str(host), "/run"], capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"cannot bind {host} over /run: {mounted.stderr.strip()}", file=sys.stderr)
        return 1
    try:
        run_daemons(FrrDirs(host), order)
    except FrrError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
