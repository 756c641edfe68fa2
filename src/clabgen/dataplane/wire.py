"""Outer headers byte for byte as Linux ipip/gre build them with `ip tunnel add` defaults.

Kernel defaults (ip_tunnel_xmit, checked against a real 6.1 kernel in tests/dataplane/test_uml.py):
ttl 0 = inherit, so the outer TTL copies the inner one (`ip tunnel add ... ttl N` fixes it at N:
then it sits in the header template and is never overwritten); pmtudisc on, so DF is always set; tos 0,
so the outer TOS carries only the inner ECN bits (CE becomes ECT(0), INET_ECN_encapsulate).
The kernel fills in the outer checksum for IP_HDRINCL raw sockets; the outer ID counts up per
tunnel as the kernel's does (the kernel would write 0 into a DF packet's ID left at 0).
"""

from __future__ import annotations

import struct

from ..tunnels import checksum, tunnel_type

ECN_MASK = 0x03
ECN_ECT0 = 0x02
ECN_CE = 0x03


def header_template(mode: str, local: str, remote: str, ttl: int = 0) -> bytes:
    """Outer header with TOS and length zero, copied in per packet; TTL too unless fixed (ttl > 0).
    The C fast path reads a zero TTL byte in the template as inherit."""
    header = bytearray(tunnel_type(mode).outer_header(local, remote))
    header[8] = ttl
    return bytes(header)


def encap_tos(inner_tos: int) -> int:
    """Outer TOS from the inner one: only ECN travels, and CE is not copied (RFC 6040)."""
    ecn = inner_tos & ECN_MASK
    return ECN_ECT0 if ecn == ECN_CE else ecn


def fill_outer(buf: bytearray | memoryview, overhead: int, inner_len: int, ident: int = 0,
               inherit_ttl: bool = True) -> int:
    """Complete the template already at buf[0:overhead] for the inner packet after it; total length.
    inherit_ttl False: the template's fixed TTL stays."""
    total = overhead + inner_len
    buf[1] = encap_tos(buf[overhead + 1])
    buf[2] = total >> 8
    buf[3] = total & 0xFF
    buf[4] = (ident >> 8) & 0xFF
    buf[5] = ident & 0xFF
    if inherit_ttl:
        buf[8] = buf[overhead + 8]
    return total


__all__ = ["checksum", "decap", "encap_tos", "fill_outer", "header_template"]


def decap(packet: memoryview, mode: str, remote: bytes) -> tuple[int, int] | None:
    """(start, end) of the inner IPv4 packet a kernel tunnel would accept, or None to drop it.

    packet is what a raw IPv4 socket returns (outer header included); the tunnel type decides
    what may sit between the outer header and the inner packet. The inner packet gets CE if the
    outer had it (the kernel drops CE over not-ECT inner packets), and is otherwise untouched.
    """
    n = len(packet)
    if n < 20 or packet[0] >> 4 != 4 or packet[12:16] != remote:
        return None
    outer_len = (packet[0] & 0x0F) * 4
    offset = tunnel_type(mode).inner_offset(packet[outer_len:n])
    if offset is None:
        return None
    start = outer_len + offset
    if n < start + 20 or packet[start] >> 4 != 4:
        return None
    if packet[1] & ECN_MASK == ECN_CE and packet[start + 1] & ECN_MASK != ECN_CE:
        if packet[start + 1] & ECN_MASK == 0:
            return None
        packet[start + 1] |= ECN_CE
        ihl = (packet[start] & 0x0F) * 4
        packet[start + 10:start + 12] = b"\0\0"
        packet[start + 10:start + 12] = struct.pack("!H", checksum(packet[start:start + ihl]))
    return start, n
