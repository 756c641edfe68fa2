"""Does this kernel do ipip/gre? Ask it, in a namespace of our own, rather than guess from modules.

`once_per_process` and `scratch_namespace` serve every such probe (this one, the BPF tunnel's)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, ParamSpec, TypeVar

from pyroute2 import netns

from ..tunnels import tunnel_type
from . import links
from .nsenter import NETNS_RUN_DIR, entered

P = ParamSpec("P")
R = TypeVar("R")


class once_per_process(Generic[P, R]):
    """A probe's answer per argument, asked once per process and one call at a time: gateways are
    configured in parallel, and a probe's namespace is named after the process."""

    def __init__(self, fn: Callable[P, R]) -> None:
        self._cached = functools.cache(fn)
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return self._cached(*args, **kwargs)  # type: ignore[arg-type]  # (probe arguments are hashable)

    def cache_clear(self) -> None:
        self._cached.cache_clear()


@contextmanager
def scratch_namespace(tag: str = "") -> Iterator[str]:
    """A throwaway network namespace for a probe (`clabgen-probe-<tag><pid>`), gone afterwards."""
    name = f"clabgen-probe-{tag}{os.getpid()}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)
        if (NETNS_RUN_DIR / name).exists():  # pyroute2 failed quietly
            os.unlink(NETNS_RUN_DIR / name)


@once_per_process
def kernel_supports(mode: str) -> bool:
    """True if `ip link add type <mode>` works here; tried in a throwaway namespace, once per process."""
    link = tunnel_type(mode).kernel_link("clabgenprobe0", "192.0.2.1", "192.0.2.2")
    with scratch_namespace() as name:
        try:
            with entered(name):
                return links.try_tunnel_link(link)
        except OSError:
            return False
