"""Userspace IPIP/GRE tunnels for hosts whose kernel lacks the modules.

A TUN device with the tunnel's name, address and MTU, plus a raw IP socket in the same network
namespace, wire-compatible with the kernel's own ipip (RFC 2003) and gre (RFC 2784) tunnels.
"""

from __future__ import annotations

from .control import ready_info, running_pid, start, stop
from .probe import kernel_supports
from .spec import OVERHEAD, DataplaneError, TunnelSpec, load_spec, parse_spec

__all__ = ["OVERHEAD", "DataplaneError", "TunnelSpec", "kernel_supports", "load_spec", "parse_spec",
           "ready_info", "running_pid", "start", "stop"]
