"""Userspace IPIP/GRE tunnels for hosts whose kernel lacks the ipip/gre modules.

Each tunnel is a TUN device carrying the tunnel's name, address and MTU plus a raw IP socket
(protocol 4 or 47) bound to the local underlay address and connected to the remote, both opened
inside the gateway's namespace. The bytes on the wire are what the kernel's ipip (RFC 2003) and
gre (RFC 2784, 4-byte header) tunnels send with `ip tunnel add` defaults: ttl inherit, DF set
(pmtudisc), ECN copied; tests/dataplane/test_uml.py checks that against a real 6.1 kernel.

One process serves a whole lab (`python -m clabgen.dataplane --spec SPEC.json --state-dir DIR`):
    start(spec, state_dir) -> pid     spawn it, return once dataplane.ready exists
    stop(state_dir)                   SIGTERM, SIGKILL after a timeout; idempotent
    ready_info(state_dir)             the tunnels as created (kind "userspace")
    impl_label(state_dir)             "C fast path" or "pure-Python fallback: <why>"
    kernel_supports("ipip")           can this kernel do it itself? (probed once, cached)
    BACKENDS                          what --tunnels takes: auto, kernel, bpf (dataplane/bpf), userspace

Forwarding runs in C when gcc is there (fastpath.c: batching, TSO split / GRO coalescing through a
vnet-header TUN), else in Python (pyloop.py); bench/bench_tunnel.py measures both.
"""

from __future__ import annotations

from .control import impl_label, ready_info, running_pid, start, stop
from .probe import kernel_supports
from .spec import OVERHEAD, DataplaneError, TunnelSpec, load_spec, parse_spec

BACKENDS = ("auto", "kernel", "bpf", "userspace")   # --tunnels: emu.apply.choose_backend


def backend_problem(name: str) -> str | None:
    """What is wrong with `--tunnels NAME` (every runtime asks before it deploys), or None."""
    return None if name in BACKENDS else f"--tunnels {name}: unknown; valid: {', '.join(BACKENDS)}"


__all__ = ["BACKENDS", "OVERHEAD", "DataplaneError", "TunnelSpec", "backend_problem", "impl_label", "kernel_supports",
           "load_spec", "parse_spec", "ready_info", "running_pid", "start", "stop"]
