"""Processes by pid, as /proc shows them: shared by the dataplane's control and destroy's sweep."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while pid runs (a zombie does not count); reaps it when it is our own exited child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
