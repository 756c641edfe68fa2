"""Per-lab runtime state under /run/clabgen/<lab>/ (typed, versioned state.json) and the per-lab lock.

state.json says which runtime deployed the lab and what it made, and is written before anything
is created, so destroy can always find a half-built lab. The lock serialises deploy, verify and
destroy of one lab across processes (different labs run in parallel); it leaves no file behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import __version__, codec
from ..errors import RuntimeFailure

RUN_DIR = Path(os.environ.get("CLABGEN_RUN_DIR", "/run/clabgen"))
SCHEMA = 1
STATE_FILE = "state.json"


@dataclass(frozen=True)
class MgmtState:
    """containerlab's management network for the lab."""

    network: str
    bridge: str
    ipv4_subnet: str


@dataclass(frozen=True)
class LabState:
    schema: int
    generator: str
    lab: str
    runtime: str
    lab_dir: str
    deployed: bool                  # False from the first step of a deploy until its last
    pid: int                        # the process that deployed it
    started: float                  # when the deploy began (seconds since the epoch)
    namespaces: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    images: dict[str, str] = field(default_factory=dict)   # node -> image it runs
    tunnels: str | None = None      # netns: the tunnel backend asked for (auto | kernel | userspace)
    userspace_tunnels: int = 0      # netns: tunnel ends the userspace dataplane serves
    topology: str | None = None     # containerlab: the variant topology file
    binary: str | None = None       # containerlab: the binary that deployed it
    mgmt: MgmtState | None = None   # containerlab: the lab's management network
    faults: tuple[str, ...] = ()    # `clabgen fault`: what is down now (scenario names of the contract)

    def to_json(self) -> str:
        return json.dumps(codec.to_data(self), indent=2, sort_keys=True) + "\n"


class StateError(RuntimeFailure):
    """A state.json this clabgen cannot read (damaged, or written by another version)."""


def new(lab: str, runtime: str, lab_dir: Path, **fields: object) -> LabState:
    return LabState(SCHEMA, f"clabgen {__version__}", lab, runtime, str(lab_dir), False, os.getpid(), time.time(),
                    **fields)  # type: ignore[arg-type]


def state_dir(lab: str) -> Path:
    return RUN_DIR / lab


def read(lab: str) -> LabState | None:
    """The lab's state, None when it has none; StateError when it cannot be read."""
    path = state_dir(lab) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: cannot read the lab's state ({exc})",
                         "clabgen destroy cleans the lab up by name: clabgen destroy LAB") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        by = data.get("generator", "another clabgen") if isinstance(data, dict) else "another program"
        raise StateError(f"{path}: written by {by}; this is clabgen {__version__} (state schema {SCHEMA})",
                         "destroy the lab (clabgen destroy LAB finds it by name) and deploy it again")
    try:
        return codec.from_data(LabState, data)  # type: ignore[no-any-return]
    except codec.CodecError as exc:
        raise StateError(f"{path}: {exc}", "clabgen destroy LAB cleans the lab up by name") from None


def read_quietly(lab: str) -> LabState | None:
    """read(), but an unreadable state counts as none (destroy and status find things by name)."""
    try:
        return read(lab)
    except StateError:
        return None


def write(state: LabState) -> None:
    d = state_dir(state.lab)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(state.to_json())
    os.replace(tmp, d / STATE_FILE)


def mark_deployed(state: LabState) -> LabState:
    done = replace(state, deployed=True)
    write(done)
    return done


def remove(lab: str) -> bool:
    d = state_dir(lab)
    if not d.exists():
        return False
    shutil.rmtree(d, ignore_errors=True)
    _tidy_run_dir()
    return True


def _tidy_run_dir() -> None:
    try:
        RUN_DIR.rmdir()   # only when no other lab is up or locked
    except OSError:
        pass


@contextmanager
def lock(lab: str, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lab's lock: one deploy, verify or destroy of a lab at a time, across processes.

    The lock file is removed by its last holder, so nothing stays under /run. A process that
    opened it before the unlink sees its inode gone and opens the new one (the usual protocol).
    """
    path = RUN_DIR / f".{lab}.lock"
    told = False
    while True:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:      # RUN_DIR was tidied away between mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
            if waiting is not None and not told:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                waiting(f"waiting for another clabgen command on lab {lab} (pid {holder})")
                told = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
        _tidy_run_dir()
