"""`python -m clabgen.emu.rundir DIR ARGV...`: run ARGV with DIR mounted over /run.

Daemons that keep state at fixed paths under /run clash when two gateways run on one host:
wireguard-go's control socket is /var/run/wireguard/<ifname>.sock and every VyOS gateway calls
its interface wg0; charon's pid file is /var/run/charon.pid and its socket /var/run/charon.vici.
`ip netns exec` already gives its command a private mount namespace, so this helper bind-mounts
the gateway's own directory over /run there and execs the daemon (or `wg`, `swanctl`): each
gateway's sockets and pid files live in its directory under the lab's state, never shared (the
FRR runner, frrd.py, does the same for FRR). Outside `ip netns exec` it unshares a mount
namespace itself first.
"""

from __future__ import annotations

import os
import subprocess
import sys


def argv(run_dir: str, command: list[str], ns: str | None) -> list[str]:
    """The argv that runs `command` in namespace `ns` with run_dir over /run."""
    helper = [sys.executable, "-m", "clabgen.emu.rundir", run_dir, *command]
    if ns is not None:
        return ["ip", "netns", "exec", ns, *helper]
    return ["unshare", "--mount", "--propagation", "private", *helper]


def main(args: list[str]) -> int:
    if len(args) < 3:
        print("usage: python -m clabgen.emu.rundir DIR COMMAND [ARG...]", file=sys.stderr)
        return 2
    run_dir, command = args[1], args[2:]
    mounted = subprocess.run(["mount", "--bind", run_dir, "/run"], capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"cannot bind {run_dir} over /run: {mounted.stderr.strip()}", file=sys.stderr)
        return 1
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
