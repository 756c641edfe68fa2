"""Does this kernel do ipip/gre? Ask it, in a namespace of our own, rather than guess from modules."""

from __future__ import annotations

import functools
import os
import threading

from pyroute2 import netns

from ..tunnels import tunnel_type
from . import links
from .nsenter import NETNS_RUN_DIR, entered

_ONE_AT_A_TIME = threading.Lock()     # gateways are configured in parallel; the probe namespace is per process


def kernel_supports(mode: str) -> bool:
    """True if `ip link add type <mode>` works here; tried in a throwaway namespace, once per process."""
    with _ONE_AT_A_TIME:
        return _kernel_supports(mode)


@functools.cache
def _kernel_supports(mode: str) -> bool:
    link = tunnel_type(mode).kernel_link("clabgenprobe0", "192.0.2.1", "192.0.2.2")
    name = f"clabgen-probe-{os.getpid()}"
    netns.create(name)
    try:
        with entered(name):
            return links.try_tunnel_link(link)
    except OSError:
        return False
    finally:
        netns.remove(name)
        if (NETNS_RUN_DIR / name).exists():  # pyroute2 failed quietly
            os.unlink(NETNS_RUN_DIR / name)
