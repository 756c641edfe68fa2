"""The BPF program's source: tunnel.bpf.c plus a header printed from the tunnel table.

tunnel.bpf.c knows how to wrap and unwrap a packet; what a type's header is (protocol number,
shim bytes, receive rule, what the kernel's segmentation must be told) comes from
clabgen.tunnels, one initializer per type, so a type added there reaches the program without a
line of C. A type without `gso_type` is not carried by the BPF tunnel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from ...tunnels import TUNNEL_TYPES, TunnelType

PROGRAM = Path(__file__).with_name("tunnel.bpf.c")
# The kernel's segmentation types (SKB_GSO_*) as bpf_skb_adjust_room learns them.
GSO_FLAGS = {
    "ipxip4": "BPF_F_ADJ_ROOM_ENCAP_L3_IPV4",
    "gre": "BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_GRE",
}
MAX_SHIM = 64   # what the program's bounds checks allow between the outer and the inner header


def carried(types: Iterable[TunnelType] | None = None) -> list[TunnelType]:
    """The tunnel types the BPF program carries, in the order of its TYPES[] (the index the maps use)."""
    return [t for t in (TUNNEL_TYPES.values() if types is None else types) if t.gso_type is not None]


def type_index(name: str) -> int | None:
    """TYPES[] index of a tunnel type, None if the BPF tunnel does not carry it."""
    return next((i for i, t in enumerate(carried()) if t.name == name), None)


def _array(values: Iterable[int], fmt: str = "{}") -> str:
    return "{" + ", ".join(fmt.format(v) for v in values) + "}"


def _entry(t: TunnelType) -> str:
    assert t.gso_type is not None
    if t.gso_type not in GSO_FLAGS:
        raise ValueError(f"tunnel type {t.name}: gso_type {t.gso_type!r} unknown to the BPF tunnel; "
                         f"known: {', '.join(sorted(GSO_FLAGS))}")
    if len(t.shim) > MAX_SHIM or 2 * len(t.rx_words) > len(t.shim):
        raise ValueError(f"tunnel type {t.name}: shim of {len(t.shim)} bytes, receive rule of "
                         f"{len(t.rx_words)} words: the BPF tunnel takes up to {MAX_SHIM} bytes, rule within them")
    fields = [
        f".gso_flags = {GSO_FLAGS[t.gso_type]}",
        f".proto = {t.ip_proto}", f".shim_len = {len(t.shim)}",
        f".rx_words = {len(t.rx_words)}", f".rx_opts = {len(t.rx_optional)}",
        f".rx_csum_flag = {t.rx_checksum_flag:#06x}",
        f".shim = {_array(t.shim, '{:#04x}')}",
        f".rx_mask = {_array((m for m, _ in t.rx_words), '{:#06x}')}",
        f".rx_value = {_array((v for _, v in t.rx_words), '{:#06x}')}",
        f".rx_opt_flag = {_array((f for f, _ in t.rx_optional), '{:#06x}')}",
        f".rx_opt_len = {_array(n for _, n in t.rx_optional)}",
    ]
    return f"\t/* {t.name} ({t.rfc}) */ \\\n\t{{ " + ", ".join(fields) + " }"


def types_header(types: Iterable[TunnelType] | None = None) -> str:
    """types.h for tunnel.bpf.c: sizes and one TYPES[] initializer per carried type."""
    chosen = carried(types)
    if not chosen:
        raise ValueError("no tunnel type in the table can be carried by the BPF tunnel (none has gso_type)")
    sizes = {
        "N_TYPES": len(chosen),
        "SHIM_MAX": max(1, *(len(t.shim) for t in chosen)),
        "RX_WORDS_MAX": max(1, *(len(t.rx_words) for t in chosen)),
        "RX_OPT_MAX": max(1, *(len(t.rx_optional) for t in chosen)),
    }
    lines = ["/* Generated from clabgen.tunnels by clabgen.dataplane.bpf.source: edit the table, not this. */"]
    lines += [f"#define {k} {v}" for k, v in sizes.items()]
    lines.append("#define TYPE_ENTRIES \\\n" + ", \\\n".join(_entry(t) for t in chosen))
    return "\n".join(lines) + "\n"


def digest(extra: bytes = b"") -> str:
    """What the compiled object depends on (program, generated header, compiler flags): its cache key."""
    h = hashlib.sha256(PROGRAM.read_bytes() + b"\0" + types_header().encode() + b"\0" + extra)
    return h.hexdigest()[:16]
