"""Tunnel encapsulations as data: adding a type is a row here plus template lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TunnelType:
    name: str
    ip_proto: int          # outer IP protocol number on the underlay
    overhead: int          # bytes added per packet: default tunnel MTU = underlay MTU - overhead
    linux_mode: str        # `ip tunnel add ... mode <linux_mode>`
    vyos_encapsulation: str
    rfc: str


TUNNEL_TYPES: dict[str, TunnelType] = {
    "ipip": TunnelType("ipip", 4, 20, "ipip", "ipip", "RFC 2003"),
    "gre": TunnelType("gre", 47, 24, "gre", "gre", "RFC 2784"),
}


def tunnel_type(name: str) -> TunnelType:
    return TUNNEL_TYPES[name]
