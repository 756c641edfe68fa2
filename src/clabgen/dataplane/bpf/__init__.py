"""BPF tunnels: the kernel's own speed for ipip/gre where the kernel lacks the tunnel modules.

Between the kernel's tunnels (when it has the modules) and the userspace dataplane (TUN + raw
socket, one process per lab), a tunnel end can be a veth pair with two small tc programs: nothing
runs per lab, packets never leave the kernel, 64 KB TCP packets are wrapped whole. It needs the
BPF syscall with its JIT, cls_bpf on clsact, libbpf, and the program compiled with clang (on the
host; containers get the host's object). See docs/dataplane.md.

    unavailable("ipip") -> str | None      why not here (probed once per process), None: it works
    create_device(BpfTunnel(...))          the tunnel device + its peer, in the calling thread's netns
    attach([BpfTunnel, ...], program)      one program load per namespace serving all its ends
    object_bytes()                         the compiled program (built and cached, or from the env)
    tunnels_in(netns) -> {ifname: BpfTunnelState}   read back from the kernel (verify, inspect)
    program_ids(netns) -> {id}                      our programs on the namespace's tc hooks
    tapped(netns, ifname)                           while a capture runs: the device shows what it sends
"""

from __future__ import annotations

from .build import BuildError, for_environment, object_bytes
from .ends import BpfSetupError, BpfTunnel, attach, create_device, peer_name
from .libbpf import LibbpfError
from .probe import unavailable
from .state import BpfTunnelState, program_ids, tapped, tunnels_in

__all__ = ["BpfSetupError", "BpfTunnel", "BpfTunnelState", "BuildError", "LibbpfError", "attach", "create_device",
           "for_environment", "object_bytes", "peer_name", "program_ids", "tapped", "tunnels_in", "unavailable"]
