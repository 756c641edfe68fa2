"""Tunnel encapsulations: one entry each, the only place that knows what a type looks like.

Everything per type lives here: the overhead the plan derives MTUs from, the names templates
print, how the kernel builds the link (rtnetlink kind and attributes), the outer header the
userspace and C dataplanes write, how a received outer packet is checked and unwrapped (the
same rule serves the dataplane's decapsulation and verify's capture check), and the format code
the C fast path switches on. No other module branches on a type's name: a new type is an entry
here (a subclass where its header has rules of its own), template lines and tests.
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
        would not accept it (the kernel's receive rules)."""
        return len(self.shim)


@dataclass(frozen=True)
class GreType(TunnelType):
    """GRE's header has flags: checksum and sequence number are skipped, keys and routing refused
    (a keyless Linux gre device drops them), and only IPv4 inside is carried."""

    def inner_offset(self, payload: bytes | memoryview) -> int | None:
        if len(payload) < 4:
            return None
        flags, proto = struct.unpack_from("!HH", payload, 0)
        if flags & (GRE_VERSION | GRE_ROUTING | GRE_KEY) or proto != GRE_PROTO_IPV4:
            return None
        length = 4 + (4 if flags & GRE_CSUM else 0) + (4 if flags & GRE_SEQ else 0)
        if len(payload) < length or (flags & GRE_CSUM and checksum(payload) != 0):
            return None
        return length


IPIP = TunnelType("ipip", "RFC 2003", ip_proto=4, overhead=20, linux_mode="ipip", vyos_encapsulation="ipip",
                  kernel_kind="ipip", netlink_prefix="ipip",
                  endpoint_attrs=("IFLA_IPTUN_LOCAL", "IFLA_IPTUN_REMOTE"))
GRE = GreType("gre", "RFC 2784", ip_proto=47, overhead=24, linux_mode="gre", vyos_encapsulation="gre",
              kernel_kind="gre", netlink_prefix="gre", endpoint_attrs=("IFLA_GRE_LOCAL", "IFLA_GRE_REMOTE"),
              shim=struct.pack("!HH", 0, GRE_PROTO_IPV4), c_format=C_FORMAT_GRE)

TUNNEL_TYPES: dict[str, TunnelType] = {t.name: t for t in (IPIP, GRE)}
DEFAULT_TYPE = IPIP.name   # a tunnel that names no `type:` (the seed's)
KERNEL_KINDS: dict[str, TunnelType] = {t.kernel_kind: t for t in TUNNEL_TYPES.values()}


def tunnel_type(name: str) -> TunnelType:
    """The entry for `name`; an unknown name lists the valid ones."""
    try:
        return TUNNEL_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown tunnel type {name!r}; valid: {', '.join(sorted(TUNNEL_TYPES))}") from None
