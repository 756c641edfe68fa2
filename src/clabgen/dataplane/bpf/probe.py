"""Can this machine run BPF tunnels? Try it once, in a namespace of our own, rather than guess.

Everything the real thing needs is exercised: the compiled program (or the one the host handed a
container), libbpf, the BPF syscall and the verifier (the helpers the program calls exist), a
clsact qdisc and cls_bpf filters on a veth pair. The answer is a reason, or None when it works.
"""

from __future__ import annotations

from ...tunnels import tunnel_type
from ..nsenter import entered
from ..probe import once_per_process, scratch_namespace
from . import build, ends, libbpf, source


@once_per_process
def _machine() -> str | None:
    """Why the BPF tunnel cannot run here at all (None: it can); tried once per process."""
    why = libbpf.available()
    if why:
        return why
    try:
        program = build.object_bytes()
    except (build.BuildError, OSError) as exc:
        return str(exc)
    try:
        with scratch_namespace("bpf-") as name:
            try:
                with entered(name):
                    probe = ends.BpfTunnel("clabgenprobe0", source.carried()[0].name, "192.0.2.1", "192.0.2.2", 1400)
                    ends.create_device(probe)
                    ends.attach([probe], program)
            except (libbpf.LibbpfError, ends.BpfSetupError, OSError) as exc:
                return f"the kernel does not run the BPF tunnel: {exc}"
    except OSError as exc:
        return f"cannot make a network namespace to try BPF in: {exc}"
    return None


def unavailable(mode: str) -> str | None:
    """Why a BPF tunnel of this type cannot run here, or None when it can."""
    t = tunnel_type(mode)
    if source.type_index(t.name) is None:
        return f"the BPF tunnel does not carry {t.name} (the tunnel table gives it no gso_type)"
    return _machine()
