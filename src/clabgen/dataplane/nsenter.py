"""Enter a named network namespace for a moment, from the calling thread only.

Sockets and TUN devices belong to the namespace they were created in and keep working after the
thread leaves it, so one process can serve gateways in many namespaces.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NETNS_RUN_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    # os.setns only exists from Python 3.12 on.
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Run the block inside netns: a name under /run/netns or a path such as /proc/PID/ns/net
    (None: stay where we are), then come back."""
    if netns is None:
        yield
        return
    target = os.open(NETNS_RUN_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)
