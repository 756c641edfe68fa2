"""Tunnel encapsulations: one entry each, the only place that knows what a type looks like.

Everything per type lives here: the overhead the plan derives MTUs from, the names templates
print, how the kernel builds the link (rtnetlink kind and attributes), the outer header the
userspace, C and BPF dataplanes write, how a received outer packet is checked and unwrapped (a
rule written as data, so the same rule serves the Python dataplane, verify's capture check and the
BPF program generated from this table), the format code the C fast path switches on, and how the
kernel's segmentation treats the header (which the BPF tunnel must tell it). No other module
branches on a type's name: a new type is an entry here (a subclass where its header has rules of
its own), template lines and tests.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IP_DF = 0x4000
GRE_PROTO_IPV4 = 0x0800
GRE_CSUM = 0x8000
GRE_ROUTING = 0x4000
GRE_KEY = 0x2000
GRE_SEQ = 0x1000
GRE_VERSION = 0x0007

# Decapsulation formats of fastpath.c (dp_run's `format` argument).
C_FORMAT_IPV4 = 0   # the inner IPv4 packet follows the outer header directly
C_FORMAT_GRE = 1    # a basic GRE header (RFC 2784, optional checksum, no key) comes first


def checksum(data: bytes | memoryview) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class TunnelType:
    """An IP-in-IP style encapsulation: outer IPv4 header (+ a fixed shim) around the inner packet."""

    name: str
    rfc: str
    ip_proto: int          # outer IP protocol number on the underlay
    overhead: int          # bytes added per packet: default tunnel MTU = underlay MTU - overhead
    linux_mode: str        # `ip tunnel add ... mode <linux_mode>` (the Linux part-2 scripts)
    vyos_encapsulation: str  # `interfaces tunnel tunN encapsulation <...>`
    kernel_kind: str       # rtnetlink link kind (`ip link add type <kind>`)
    netlink_prefix: str    # pyroute2's attribute prefix for the link's local/remote (`ipip_local`)
    endpoint_attrs: tuple[str, str]  # IFLA_INFO_DATA attributes the kernel reports them in
    shim: bytes = b""      # bytes between the outer IPv4 header and the inner packet
    c_format: int = C_FORMAT_IPV4
    # The receive rule: 16-bit words at the start of the shim, each checked as (mask, value); then
    # optional fields, (flag in the first word, bytes), in header order; a flag in the first word that
    # announces a checksum over shim and payload (which must then verify).
    rx_words: tuple[tuple[int, int], ...] = ()
    rx_optional: tuple[tuple[int, int], ...] = ()
    rx_checksum_flag: int = 0
    # How the kernel's segmentation walks this header (its SKB_GSO_* name): "ipxip4" when the inner
    # IPv4 header follows the outer one, "gre" for a GRE shim. The BPF tunnel marks large TCP
    # packets with it so the kernel can split them after encapsulation; None: the BPF tunnel does
    # not carry this type.
    gso_type: str | None = None

    def kernel_link(self, ifname: str, local: str, remote: str) -> dict[str, Any]:
        """pyroute2 `link("add", **kwargs)` arguments for the kernel's own tunnel device."""
        p = self.netlink_prefix
        return {"ifname": ifname, "kind": self.kernel_kind, f"{p}_local": local, f"{p}_remote": remote}

    def link_endpoints(self, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(local, remote) of a kernel link of this kind, from its decoded IFLA_INFO_DATA."""
        local, remote = self.endpoint_attrs
        return data.get(local), data.get(remote)

    def outer_header(self, local: str, remote: str) -> bytes:
        """Outer IPv4 header + shim with TOS, length, ID and TTL zero: filled in per packet.

        As Linux builds it with `ip tunnel add` defaults: DF set (pmtudisc), TTL inherited.
        """
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, IP_DF, 0, self.ip_proto, 0,
                         socket.inet_aton(local), socket.inet_aton(remote))
        return ip + self.shim

    def inner_offset(self, payload: bytes | memoryview) -> int | None:
        """Where the inner packet starts in an outer packet's payload, or None when this tunnel
        would not accept it (the kernel's receive rules, as the rx_* fields state them)."""
        words = len(self.rx_words)
        if len(payload) < max(len(self.shim), 2 * words):
            return None
        values = struct.unpack_from(f"!{words}H", payload, 0)
        if any(v & mask != want for v, (mask, want) in zip(values, self.rx_words)):
            return None
        first = values[0] if values else 0
        length = len(self.shim) + sum(extra for flag, extra in self.rx_optional if first & flag)
        if len(payload) < length or (first & self.rx_checksum_flag and checksum(payload) != 0):
            return None
        return length


@dataclass(frozen=True)
class GreType(TunnelType):
    """GRE's header has flags (its rx_* rule): checksum and sequence number are skipped, keys and
    routing refused (a keyless Linux gre device drops them), and only IPv4 inside is carried."""


IPIP = TunnelType("ipip", "RFC 2003", ip_proto=4, overhead=20, linux_mode="ipip", vyos_encapsulation="ipip",
                  kernel_kind="ipip", netlink_prefix="ipip",
                  endpoint_attrs=("IFLA_IPTUN_LOCAL", "IFLA_IPTUN_REMOTE"), gso_type="ipxip4")
GRE = GreType("gre", "RFC 2784", ip_proto=47, overhead=24, linux_mode="gre", vyos_encapsulation="gre",
              kernel_kind="gre", netlink_prefix="gre", endpoint_attrs=("IFLA_GRE_LOCAL", "IFLA_GRE_REMOTE"),
              shim=struct.pack("!HH", 0, GRE_PROTO_IPV4), c_format=C_FORMAT_GRE,
              rx_words=((GRE_VERSION | GRE_ROUTING | GRE_KEY, 0), (0xFFFF, GRE_PROTO_IPV4)),
              rx_optional=((GRE_CSUM, 4), (GRE_SEQ, 4)), rx_checksum_flag=GRE_CSUM, gso_type="gre")

TUNNEL_TYPES: dict[str, TunnelType] = {t.name: t for t in (IPIP, GRE)}
DEFAULT_TYPE = IPIP.name   # a tunnel that names no `type:` (the seed's)
KERNEL_KINDS: dict[str, TunnelType] = {t.kernel_kind: t for t in TUNNEL_TYPES.values()}


def tunnel_type(name: str) -> TunnelType:
    """The entry for `name`; an unknown name lists the valid ones."""
    try:
        return TUNNEL_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown tunnel type {name!r}; valid: {', '.join(sorted(TUNNEL_TYPES))}") from None
