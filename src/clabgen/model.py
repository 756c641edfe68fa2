"""The validated intent: what the user asked for, with where each part was written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from .errors import Where
from .tunnels import DEFAULT_TYPE


@dataclass(frozen=True)
class Located:
    where: Where
    pos: Mapping[str, Where] = field(default_factory=dict, compare=False, repr=False)

    def at(self, name: str) -> Where:
        """Where field `name` was written, or the object itself when it was derived."""
        return self.pos.get(name, self.where)


@dataclass(frozen=True)
class Server(Located):
    name: str = ""
    image: str | None = None
    address: IPv4Address | None = None
    ifname: str | None = None


@dataclass(frozen=True)
class Gateway(Located):
    name: str = ""
    platform: str | None = None
    image: str | None = None
    address: IPv4Address | None = None
    underlay_address: IPv4Address | None = None
    lan_ifname: str | None = None
    underlay_ifname: str | None = None
    loopback: IPv4Address | None = None     # dynamic routing: loopback and router ID
    asn: int | None = None                  # bgp: its AS
    wireguard_key: str | None = None        # a file holding its WireGuard private key (else a lab-only key)


@dataclass(frozen=True)
class Site(Located):
    name: str = ""
    lan: IPv4Network = IPv4Network("0.0.0.0/32")
    gateway: Gateway = Gateway(Where(""))
    servers: tuple[Server, ...] = ()


@dataclass(frozen=True)
class Underlay(Located):
    subnet: IPv4Network = IPv4Network("0.0.0.0/32")
    mtu: int = 9500
    first_host: int = 10


@dataclass(frozen=True)
class Proposal(Located):
    """An IKE or ESP proposal (`ipsec.ike`, `ipsec.esp`); VyOS's own words for the algorithms."""

    encryption: str = "aes128gcm128"
    hash: str = "sha256"
    dh_group: int = 14                      # IKE: the key exchange; ESP: PFS (0: none)
    lifetime: int = 3600


@dataclass(frozen=True)
class Dpd(Located):
    action: str = "restart"
    interval: int = 2
    timeout: int = 10


# Defaults of `ipsec.ike` and `ipsec.esp` (docs/intent.md): AES-GCM, which the userspace ESP of
# strongSwan's kernel-libipsec and every kernel's XFRM both have.
IKE_DEFAULT = Proposal(Where(""), lifetime=3600)
ESP_DEFAULT = Proposal(Where(""), lifetime=1800)


@dataclass(frozen=True)
class CryptoOptions(Located):
    """`wireguard:` or `ipsec:` options of an encrypted tunnel; everything has a default."""

    ports: tuple[int, int] | None = None    # wireguard: listen port of each end
    keepalive: int | None = None            # wireguard: persistent-keepalive seconds
    psk: str | None = None                  # a file: WireGuard preshared key (base64) or IPsec PSK (text)
    mode: str = "gre"                       # ipsec: gre (GRE over IPsec) | policy
    ike: Proposal = IKE_DEFAULT
    esp: Proposal = ESP_DEFAULT
    dpd: Dpd = Dpd(Where(""))

    @property
    def esp_framing(self) -> tuple[str, str]:
        """(encryption, hash) of ESP: what its packets' length depends on (tunnels.esp_len)."""
        return self.esp.encryption, self.esp.hash


@dataclass(frozen=True)
class Tunnel(Located):
    name: str | None = None
    type: str = DEFAULT_TYPE
    endpoints: tuple[str, ...] = ()
    subnet: IPv4Network = IPv4Network("0.0.0.0/32")
    addresses: tuple[IPv4Address, ...] | None = None
    ifnames: tuple[str, ...] | None = None
    mtu: int | None = None
    crypto: CryptoOptions | None = None     # the `wireguard:` / `ipsec:` mapping, when given

    @property
    def policy(self) -> bool:
        """Policy-based IPsec: no tunnel interface, subnet or addresses; the LANs' packets go in ESP."""
        return self.crypto is not None and self.crypto.mode == "policy"


@dataclass(frozen=True)
class TunnelRouting(Located):
    """Per-tunnel routing options (`routing.tunnels.<name>`)."""

    cost: int | None = None
    area: str | None = None


# Lab defaults: fast convergence in a lab, documented in docs/intent.md (VyOS's own defaults are
# hello 10 / dead 40 for OSPF and keepalive 60 / holdtime 180 for BGP).
LOOPBACK_POOL = IPv4Network("10.255.255.0/24")


@dataclass(frozen=True)
class Routing(Located):
    type: str = "static"
    loopbacks: IPv4Network = LOOPBACK_POOL  # router IDs and loopbacks of dynamic routing, host 1, 2, ... in site order
    bfd: bool = False
    # ospf
    area: str = "0"
    cost: int = 10
    hello: int = 1
    dead: int = 4
    retransmit: int = 3                     # VyOS 1.2 accepts 3..65535 (FRR and VyOS default 5)
    passive_lans: bool = True
    tunnels: Mapping[str, TunnelRouting] = field(default_factory=dict)
    # bgp
    as_base: int = 65001
    ibgp: str = "tunnel"                    # tunnel | loopback: how two tunnel ends of one AS peer
    keepalive: int = 1
    holdtime: int = 4                       # VyOS 1.2 accepts 0 or 4..65535
    announce: tuple[str, ...] = ("lans",)   # lans, loopbacks


@dataclass(frozen=True)
class Defaults(Located):
    gateway_platform: str = "vyos-1.2"
    gateway_image: str | None = None
    server_image: str = "clabgen/node:latest"


@dataclass(frozen=True)
class Lab(Located):
    name: str = ""
    source: Path = Path(".")
    defaults: Defaults = Defaults(Where(""))
    underlay: Underlay = Underlay(Where(""))
    sites: tuple[Site, ...] = ()
    tunnels: tuple[Tunnel, ...] = ()
    routing: Routing = Routing(Where(""))
    write_secrets: bool = False             # put secrets read from files into the rendered files

    def gateways(self) -> tuple[Gateway, ...]:
        return tuple(s.gateway for s in self.sites)
