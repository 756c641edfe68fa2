"""Start and stop the dataplane process from a runtime: spawn, wait for ready, signal, reap."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..procs import alive
from .daemon import LOG_FILE, PID_FILE, READY_FILE
from .spec import DataplaneError, TunnelSpec, parse_spec

SPEC_FILE = "dataplane.spec.json"
LOCK_FILE = "dataplane.lock"


def _log_tail(state_dir: Path, lines: int = 20) -> str:
    try:
        return "\n".join((state_dir / LOG_FILE).read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spec_dict(spec: dict[str, Any] | Sequence[TunnelSpec]) -> dict[str, Any]:
    if isinstance(spec, dict):
        parse_spec(spec)  # fail here, with the field named, rather than in the child
        return spec
    return {"tunnels": [t.as_dict() for t in spec]}


def _is_dataplane(pid: int) -> bool:
    """Guard against a stale pid file naming some unrelated, recycled pid."""
    try:
        return b"clabgen.dataplane" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def start(spec: dict[str, Any] | Sequence[TunnelSpec], state_dir: Path, *, impl: str = "auto",
          timeout: float = 20.0) -> int:
    """Spawn the dataplane for a lab and return its pid once it forwards; raise with the log tail."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two deploys of one lab must not both spawn one
        return _start_locked(spec, state_dir, impl, timeout)


def _start_locked(spec: dict[str, Any] | Sequence[TunnelSpec], state_dir: Path, impl: str, timeout: float) -> int:
    if pid := running_pid(state_dir):
        raise DataplaneError(f"a dataplane already runs for {state_dir} (pid {pid})")
    spec_path = state_dir / SPEC_FILE
    spec_path.write_text(json.dumps(_spec_dict(spec), indent=2) + "\n")
    (state_dir / READY_FILE).unlink(missing_ok=True)
    env = dict(os.environ)
    with open(state_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clabgen.dataplane", "--spec", str(spec_path), "--state-dir", str(state_dir),
             "--impl", impl],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / READY_FILE).exists():
            return proc.pid
        if proc.poll() is not None:
            raise DataplaneError(f"dataplane exited with {proc.returncode}:\n{_log_tail(state_dir)}")
        time.sleep(0.02)
    _stop_locked(state_dir, 5.0)
    proc.poll()
    raise DataplaneError(f"dataplane not ready after {timeout:.0f}s:\n{_log_tail(state_dir)}")


def running_pid(state_dir: Path) -> int | None:
    """The dataplane pid recorded in state_dir if that process still runs."""
    try:
        pid = int((Path(state_dir) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and _is_dataplane(pid) else None


def ready_info(state_dir: Path) -> dict[str, Any] | None:
    """The tunnels as the running dataplane created them (None if it is not forwarding)."""
    try:
        info: dict[str, Any] = json.loads((Path(state_dir) / READY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info


def impl_label(state_dir: Path) -> str:
    """How the lab's dataplane forwards, for progress lines: "C fast path" or "pure-Python fallback: why"."""
    info = ready_info(state_dir) or {}
    if info.get("impl") == "c":
        return "C fast path"
    return f"pure-Python fallback: {info.get('fallback') or 'reason unknown'}"


def stop(state_dir: Path, *, timeout: float = 5.0) -> bool:
    """SIGTERM the lab's dataplane, SIGKILL it after timeout; False if none was running."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return False
    with open(state_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _stop_locked(state_dir, timeout)


def _stop_locked(state_dir: Path, timeout: float) -> bool:
    pid = running_pid(state_dir)
    if pid is None:
        for name in (PID_FILE, READY_FILE):
            (state_dir / name).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)
    for name in (PID_FILE, READY_FILE):
        (state_dir / name).unlink(missing_ok=True)
    return True
