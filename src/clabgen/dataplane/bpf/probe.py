"""Can this machine run BPF tunnels? Try it once, in a namespace of our own, rather than guess.

Everything the real thing needs is exercised: the compiled program (or the one the host handed a
container), libbpf, the BPF syscall and the verifier (the helpers the program calls exist), a
clsact qdisc and cls_bpf filters on a veth pair. The answer is a reason, or None when it works.
"""

from __future__ import annotations

import functools
import os
import threading

from pyroute2 import netns

from ...tunnels import tunnel_type
from ..nsenter import NETNS_RUN_DIR, entered
from . import build, ends, libbpf, source

_ONE_AT_A_TIME = threading.Lock()     # gateways are configured in parallel; the probe namespace is per process


def _machine() -> str | None:
    """Why the BPF tunnel cannot run here at all (None: it can); tried once per process."""
    with _ONE_AT_A_TIME:
        return _machine_once()


@functools.cache
def _machine_once() -> str | None:
    why = libbpf.available()
    if why:
        return why
    try:
        program = build.object_bytes()
    except (build.BuildError, OSError) as exc:
        return str(exc)
    name = f"clabgen-probe-bpf-{os.getpid()}"
    try:
        netns.create(name)
    except OSError as exc:
        return f"cannot make a network namespace to try BPF in: {exc}"
    try:
        with entered(name):
            probe = ends.BpfTunnel("clabgenprobe0", source.carried()[0].name, "192.0.2.1", "192.0.2.2", 1400)
            ends.create_device(probe)
            ends.attach([probe], program)
    except (libbpf.LibbpfError, ends.BpfSetupError, OSError) as exc:
        return f"the kernel does not run the BPF tunnel: {exc}"
    finally:
        netns.remove(name)
        if (NETNS_RUN_DIR / name).exists():  # pyroute2 failed quietly
            os.unlink(NETNS_RUN_DIR / name)
    return None


def unavailable(mode: str) -> str | None:
    """Why a BPF tunnel of this type cannot run here, or None when it can."""
    t = tunnel_type(mode)
    if source.type_index(t.name) is None:
        return f"the BPF tunnel does not carry {t.name} (the tunnel table gives it no gso_type)"
    return _machine()
