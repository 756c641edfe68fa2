"""Find what a lab left running even when its records are gone: processes by command line or by
the network namespace they live in. Destroy uses it so nothing survives a lost state directory."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ..netlink import NETNS_DIR
from ..procs import alive

DATAPLANE_MODULE = b"clabgen.dataplane"


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def dataplanes_of(state_dir: Path) -> list[int]:
    """Dataplane processes started for this state directory (`--state-dir DIR` on their command line)."""
    want = str(state_dir).encode()
    out = []
    for pid in _pids():
        argv = _cmdline(pid)
        if DATAPLANE_MODULE in argv and any(a == b"--state-dir" and i + 1 < len(argv) and argv[i + 1] == want
                                            for i, a in enumerate(argv)):
            out.append(pid)
    return out


def in_namespaces(names: list[str]) -> list[int]:
    """Processes whose network namespace is one of these named namespaces (e.g. routing daemons)."""
    ids = set()
    for n in names:
        try:
            st = os.stat(NETNS_DIR / n)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    if not ids:
        return []
    out = []
    for pid in _pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in ids:
            out.append(pid)
    return out


def stop(pids: list[int], timeout: float = 3.0, *, grace: bool = True) -> list[int]:
    """SIGTERM, then SIGKILL what is still there after timeout; the pids that were signalled.
    grace=False: SIGKILL at once (processes whose namespace is going away, such as routing
    daemons that would spend seconds shutting down), then wait for them to be gone."""
    hit = []
    for pid in sorted(set(pids)):
        try:
            os.kill(pid, signal.SIGTERM if grace else signal.SIGKILL)
            hit.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + (timeout if grace else 0.0)
    while any(alive(p) for p in hit) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in hit:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    while any(alive(p) for p in hit) and time.monotonic() < deadline + timeout:
        time.sleep(0.02)
    return hit


def describe(pid: int) -> str:
    argv = [a.decode(errors="replace") for a in _cmdline(pid) if a]
    return f"process {pid} ({' '.join(argv)[:80]})" if argv else f"process {pid}"
