"""Tunnel encapsulations: one entry each, the only place that knows what a type looks like.

Everything per type lives here: the overhead the plan derives MTUs from, the names templates
print, how the kernel builds the link (rtnetlink kind and attributes), the outer header the
userspace, C and BPF dataplanes write, how a received outer packet is checked and unwrapped (a
rule written as data, so the same rule serves the Python dataplane, verify's capture check and the
BPF program generated from this table), the format code the C fast path switches on, and how the
kernel's segmentation treats the header (which the BPF tunnel must tell it). No other module
branches on a type's name: a new type is an entry here (a subclass where its header has rules of
its own), template lines and tests.

Encrypted types (WireGuard, IPsec) are `EncryptedType`s: a daemon holds their keys and does the
handshake (`daemon` names the clabgen.crypto entry that runs and asks it), their MTU follows the
cipher's framing (`max_mtu`, `wire_len`), and verify tells their packets on the underlay by
`wire_signature` instead of unwrapping them.
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
    ifname_prefix: str = "tun"     # interface names the plan derives per gateway: tun0, tun1, ...
    ifname_kind: str = "tunnel"    # the platform naming rule they follow (platform.yml `ifnames`)
    mtu_in_config: bool = False    # configs always write its MTU (the platform's default is not derived)
    daemon: str = ""               # encrypted: the clabgen.verify_crypto entry that asks its daemon
    link_kinds: tuple[str, ...] = ()   # encrypted: what its interface may be (kernel device, the daemon's TUN)
    device_by_daemon: bool = False  # its interface is the daemon's (WireGuard), not a clabgen tunnel

    @property
    def encrypted(self) -> bool:
        return False

    def max_mtu(self, underlay_mtu: int, esp: tuple[str, str] | None = None) -> int:
        """The largest inner packet one underlay packet of `underlay_mtu` bytes carries whole
        (`esp`: the ESP encryption and hash, for the types IPsec protects)."""
        return underlay_mtu - self.overhead

    def wire_len(self, inner: int, mtu: int, esp: tuple[str, str] | None = None) -> int:
        """Length of the outer IP packet carrying an inner IP packet of `inner` bytes (tunnel MTU `mtu`)."""
        return inner + self.overhead

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


UDP = 17
ESP = 50
IKE_PORT, NAT_T_PORT = 500, 4500
WG_DATA, WG_HEADER = 4, 32     # transport data message: type 4 + 3 reserved + receiver 4 + counter 8, tag 16


@dataclass(frozen=True)
class EncryptedType(TunnelType):
    """A tunnel a daemon encrypts: keys, a handshake, ciphertext on the wire."""

    @property
    def encrypted(self) -> bool:
        return True

    def wire_signature(self, proto: int, payload: bytes | memoryview, ports: tuple[int, int]) -> str | None:
        """What an outer packet between the two ends is, when it is this tunnel's encrypted traffic
        (or its key exchange); None for anything else (cleartext). ports: (local, remote) UDP ports."""
        return None


def _udp_ports(payload: bytes | memoryview) -> tuple[int, int] | None:
    if len(payload) < 8:
        return None
    src, dst = struct.unpack_from("!HH", payload, 0)
    return src, dst


@dataclass(frozen=True)
class WireGuardType(EncryptedType):
    """WireGuard: UDP between the listen ports; data messages pad the inner packet to 16 bytes
    (never beyond the MTU) and add a 16-byte header and a 16-byte Poly1305 tag."""

    def kernel_link(self, ifname: str, local: str, remote: str) -> dict[str, Any]:
        return {"ifname": ifname, "kind": self.kernel_kind}

    def wire_len(self, inner: int, mtu: int, esp: tuple[str, str] | None = None) -> int:
        padded = min(-(-inner // 16) * 16, max(mtu, inner))
        return 20 + 8 + WG_HEADER + padded

    def wire_signature(self, proto: int, payload: bytes | memoryview, ports: tuple[int, int]) -> str | None:
        udp = _udp_ports(payload) if proto == UDP else None
        if udp is None or {udp[0], udp[1]} != set(ports) or len(payload) < 12:
            return None
        kind = payload[8]
        if bytes(payload[9:12]) != b"\0\0\0" or kind not in (1, 2, 3, 4):
            return None
        return {1: "WireGuard handshake initiation", 2: "WireGuard handshake response", 3: "WireGuard cookie reply",
                4: "WireGuard data"}[kind]


# ESP's framing per encryption (IV bytes, padding block) and, for CBC, the HMAC's truncated ICV (RFC 4868)
ESP_IV = {"aes128gcm128": (8, 4), "aes256gcm128": (8, 4), "aes128": (16, 16), "aes256": (16, 16)}
ESP_ICV = {"sha1": 12, "sha256": 16, "sha384": 24, "sha512": 32}
ESP_DEFAULT = ("aes128gcm128", "sha256")


def esp_len(inner: int, esp: tuple[str, str] | None = None) -> int:
    """ESP in UDP, tunnel mode (RFC 4303/3948): outer IP 20 + UDP 8 + SPI and sequence 8 + IV +
    the inner packet, padded so that it and the 2-byte trailer end on the cipher's block (AES-GCM:
    IV 8, 4 bytes, ICV 16 (RFC 4106); AES-CBC: IV 16, 16 bytes, the HMAC's ICV)."""
    encryption, hash_ = esp or ESP_DEFAULT
    iv, block = ESP_IV[encryption]
    icv = 16 if encryption.endswith("gcm128") else ESP_ICV[hash_]
    body = inner + 2
    return 20 + 8 + 8 + iv + body + (-body % block) + icv


# strongSwan's userspace ESP (kernel-libipsec, 5.9) reads its TUN device ipsec0 with a buffer of
# the device's MTU at creation, fixed at 1400: a larger protected packet never gets through. GRE
# over IPsec therefore carries at most 1400 - 24 bytes wherever it runs (the kernel's XFRM could do
# more, but a lab's MTU must not depend on the machine it is deployed on).
LIBIPSEC_MTU = 1400


def esp_max_inner(underlay_mtu: int, esp: tuple[str, str] | None = None) -> int:
    """The largest inner packet esp_len() fits into one underlay packet."""
    inner = underlay_mtu - 62
    while inner > 0 and esp_len(inner, esp) > underlay_mtu:
        inner -= 1
    return inner


@dataclass(frozen=True)
class IpsecGreType(EncryptedType, GreType):
    """GRE over IPsec: a GRE tunnel between the underlay addresses whose packets ESP protects (in
    UDP 4500, tunnel mode, AES-GCM), so routing protocols run encrypted over an ordinary tunnel
    interface. The GRE part is the gre entry's, the MTU what is left after GRE and ESP."""

    def max_mtu(self, underlay_mtu: int, esp: tuple[str, str] | None = None) -> int:
        return min(esp_max_inner(underlay_mtu, esp), LIBIPSEC_MTU) - 24

    def wire_len(self, inner: int, mtu: int, esp: tuple[str, str] | None = None) -> int:
        return esp_len(inner + 24, esp)

    def wire_signature(self, proto: int, payload: bytes | memoryview, ports: tuple[int, int]) -> str | None:
        if proto == ESP:
            return "ESP"
        udp = _udp_ports(payload) if proto == UDP else None
        if udp is None:
            return None
        if udp == (IKE_PORT, IKE_PORT):
            return "IKE"
        if udp != (NAT_T_PORT, NAT_T_PORT) or len(payload) < 12:
            return None
        if bytes(payload[8:12]) == b"\0\0\0\0":
            return "IKE (non-ESP marker, UDP 4500)"
        return "ESP in UDP 4500" if len(payload) > 9 else "NAT-T keepalive"


IPIP = TunnelType("ipip", "RFC 2003", ip_proto=4, overhead=20, linux_mode="ipip", vyos_encapsulation="ipip",
                  kernel_kind="ipip", netlink_prefix="ipip",
                  endpoint_attrs=("IFLA_IPTUN_LOCAL", "IFLA_IPTUN_REMOTE"), gso_type="ipxip4")
GRE = GreType("gre", "RFC 2784", ip_proto=47, overhead=24, linux_mode="gre", vyos_encapsulation="gre",
              kernel_kind="gre", netlink_prefix="gre", endpoint_attrs=("IFLA_GRE_LOCAL", "IFLA_GRE_REMOTE"),
              shim=struct.pack("!HH", 0, GRE_PROTO_IPV4), c_format=C_FORMAT_GRE,
              rx_words=((GRE_VERSION | GRE_ROUTING | GRE_KEY, 0), (0xFFFF, GRE_PROTO_IPV4)),
              rx_optional=((GRE_CSUM, 4), (GRE_SEQ, 4)), rx_checksum_flag=GRE_CSUM, gso_type="gre")

# WireGuard over IPv4: outer IP 20 + UDP 8 + data header 16 + Poly1305 tag 16 (padding not counted:
# it never takes a packet beyond the MTU).
WIREGUARD = WireGuardType("wireguard", "WireGuard (Donenfeld, NDSS 2017)", ip_proto=UDP, overhead=60,
                          linux_mode="wireguard", vyos_encapsulation="", kernel_kind="wireguard", netlink_prefix="",
                          endpoint_attrs=("", ""), ifname_prefix="wg", ifname_kind="wireguard", mtu_in_config=True,
                          daemon="wireguard", link_kinds=("wireguard", "tun"), device_by_daemon=True)
# GRE over IPsec: GRE 24 + ESP in UDP 62 (outer IP 20, UDP 8, SPI/sequence 8, IV 8, trailer 2, ICV 16)
# + 0..3 bytes of ESP padding; max_mtu() takes the padding into account, and the 1400-byte limit of
# userspace ESP (LIBIPSEC_MTU).
IPSEC = IpsecGreType("ipsec", "RFC 4303 + RFC 3948 (GRE over IPsec)", ip_proto=UDP, overhead=86, linux_mode="gre",
                     vyos_encapsulation="gre", kernel_kind="gre", netlink_prefix="gre",
                     endpoint_attrs=("IFLA_GRE_LOCAL", "IFLA_GRE_REMOTE"),
                     shim=struct.pack("!HH", 0, GRE_PROTO_IPV4), c_format=C_FORMAT_GRE,
                     rx_words=GRE.rx_words, rx_optional=GRE.rx_optional, rx_checksum_flag=GRE_CSUM,
                     daemon="ipsec", link_kinds=("gre",), mtu_in_config=True)
# No gso_type: a BPF tunnel hands its packets straight to the underlay, past the route into
# userspace ESP, so GRE over IPsec never runs on the BPF backend.


@dataclass(frozen=True)
class IpsecPolicyType(IpsecGreType):
    """Policy-based IPsec (`ipsec: {mode: policy}`): ESP carries the LAN packets themselves, picked
    by the security policies' prefixes; no tunnel interface, no GRE. The MTU is ESP's alone."""

    def max_mtu(self, underlay_mtu: int, esp: tuple[str, str] | None = None) -> int:
        return min(esp_max_inner(underlay_mtu, esp), LIBIPSEC_MTU)

    def wire_len(self, inner: int, mtu: int, esp: tuple[str, str] | None = None) -> int:
        return esp_len(inner, esp)


# Not a type of its own in the intent (`type: ipsec` with `mode: policy`): tunnel_type(name, policy=True).
IPSEC_POLICY = IpsecPolicyType("ipsec", "RFC 4301 + RFC 4303 + RFC 3948 (policy-based IPsec)", ip_proto=UDP,
                               overhead=62, linux_mode="", vyos_encapsulation="", kernel_kind="", netlink_prefix="",
                               endpoint_attrs=("", ""), daemon="ipsec", ifname_prefix="", ifname_kind="policy")

TUNNEL_TYPES: dict[str, TunnelType] = {t.name: t for t in (IPIP, GRE, WIREGUARD, IPSEC)}
DEFAULT_TYPE = IPIP.name   # a tunnel that names no `type:` (the seed's)
# The first type of each kernel link kind (ipsec's GRE device is gre's).
KERNEL_KINDS: dict[str, TunnelType] = {}
for _t in TUNNEL_TYPES.values():
    KERNEL_KINDS.setdefault(_t.kernel_kind, _t)


def tunnel_type(name: str, policy: bool = False) -> TunnelType:
    """The entry for `name` (`policy`: a policy-based IPsec tunnel's); an unknown name lists the
    valid ones. Every tunnel object (intent, plan, contract) says `.policy`."""
    if policy and name == IPSEC.name:
        return IPSEC_POLICY
    try:
        return TUNNEL_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown tunnel type {name!r}; valid: {', '.join(sorted(TUNNEL_TYPES))}") from None
