"""The routing part of a VyOS config.boot (protocols ospf, bgp, bfd), as read and checked.

This is the release-independent meaning of those nodes (1.2's `bgp 65001 {}` and 1.4's
`bgp { system-as 65001 }` give the same Bgp), so the FRR translation (frr.py) has one input
whatever the syntax. Only what the translation writes is kept; every other leaf was listed as
not applied when it was read (vyos_routing.py). Blocks keep their config.boot line for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network


@dataclass(frozen=True)
class Redistribute:
    """`redistribute connected { metric N metric-type T }` (ospf) or its BGP address-family form."""

    protocol: str
    metric: int | None = None
    metric_type: int | None = None


@dataclass(frozen=True)
class OspfInterface:
    """Per-interface OSPF: 1.4's `protocols ospf interface X` or 1.2's `interfaces ... X ip ospf`."""

    ifname: str
    path: str
    line: int
    cost: int | None = None
    hello_interval: int | None = None
    dead_interval: int | None = None
    retransmit_interval: int | None = None
    transmit_delay: int | None = None
    priority: int | None = None
    network: str | None = None
    passive: bool | None = None        # True: `passive`; False: `passive { disable }`; None: unset
    bfd: bool = False
    mtu_ignore: bool = False


@dataclass(frozen=True)
class Ospf:
    line: int
    networks: tuple[tuple[str, IPv4Network], ...] = ()     # (area, prefix), in file order
    router_id: IPv4Address | None = None
    passive_default: bool = False
    passive: tuple[str, ...] = ()                         # 1.2's `passive-interface eth1`
    interfaces: tuple[OspfInterface, ...] = ()
    redistribute: tuple[Redistribute, ...] = ()
    spf: tuple[int, int, int] | None = None                 # delay, initial-holdtime, max-holdtime
    log_adjacency_changes: str | None = None                # "" or "detail"

    @property
    def uses_bfd(self) -> bool:
        return any(i.bfd for i in self.interfaces)


@dataclass(frozen=True)
class BgpNeighbor:
    address: str
    line: int
    remote_as: str                                       # a number, `external` or `internal`
    update_source: str | None = None
    ebgp_multihop: int | None = None
    timers: tuple[int, int] | None = None                   # keepalive, holdtime
    bfd: bool = False
    bfd_check_control_plane: bool = False
    ipv4_unicast: bool = False                            # has `address-family ipv4-unicast`
    nexthop_self: str | None = None                       # "" or "force"
    description: str | None = None


@dataclass(frozen=True)
class Bgp:
    asn: int
    line: int
    neighbors: tuple[BgpNeighbor, ...] = ()
    networks: tuple[IPv4Network, ...] = ()
    redistribute: tuple[Redistribute, ...] = ()
    router_id: IPv4Address | None = None
    compare_routerid: bool = False
    log_neighbor_changes: bool = False
    timers: tuple[int, int] | None = None                   # keepalive, holdtime
    default_ipv4_unicast: bool = True                     # 1.4 always turns it off; 1.2 on request
    activate_all: bool = False                            # 1.2 activates a neighbor with its remote-as
    network_import_check: bool = False
    ebgp_requires_policy: bool = False


@dataclass(frozen=True)
class BfdPeer:
    address: str
    line: int
    multiplier: int = 3                                   # VyOS's defaults (FRR's too)
    receive: int = 300
    transmit: int = 300
    multihop: bool = False
    source: str | None = None
    shutdown: bool = False


@dataclass(frozen=True)
class Routing:
    """What a config asks of FRR; empty when it has no ospf, bgp or bfd (static routes alone are
    applied with netlink, so a lab without dynamic routing needs no FRR installed)."""

    ospf: Ospf | None = None
    bgp: Bgp | None = None
    bfd: tuple[BfdPeer, ...] = ()

    @property
    def where(self) -> tuple[int, str]:
        """The line and path a problem with the whole routing (FRR would not start) points at."""
        if self.ospf is not None:
            return self.ospf.line, "protocols ospf"
        if self.bgp is not None:
            return self.bgp.line, "protocols bgp"
        return (self.bfd[0].line if self.bfd else 0), "protocols bfd"

    @property
    def uses_frr(self) -> bool:
        return self.ospf is not None or self.bgp is not None or bool(self.bfd)

    @property
    def daemons(self) -> tuple[str, ...]:
        """FRR daemons to run, in start order: zebra first, since the others connect to it."""
        if not self.uses_frr:
            return ()
        out = ["zebra", "staticd"]
        if self.bfd or (self.ospf and self.ospf.uses_bfd) or (self.bgp and any(n.bfd for n in self.bgp.neighbors)):
            out.append("bfdd")
        if self.ospf:
            out.append("ospfd")
        if self.bgp:
            out.append("bgpd")
        return tuple(out)
