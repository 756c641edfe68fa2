"""Routing protocols as a registry the plan reads: one entry per protocol.

An entry turns the lab's sites and tunnels into what each gateway's configuration declares
(static routes today) and is named by the intent's `routing:`. A new protocol is a module here,
an entry in ROUTING, template lines per platform and the platforms' `routing:` lists.
"""

from __future__ import annotations

from .base import KernelFacts, RoutingInput, RoutingPlan, RoutingProtocol
from .bgp import BgpRouting
from .ospf import OspfRouting
from .static import StaticRouting

ROUTING: dict[str, RoutingProtocol] = {p.name: p for p in (StaticRouting(), OspfRouting(), BgpRouting())}


def get(name: str) -> RoutingProtocol:
    """The registry entry; an unknown name lists the valid ones."""
    try:
        return ROUTING[name]
    except KeyError:
        raise ValueError(f"unknown routing protocol {name!r}; valid: {', '.join(sorted(ROUTING))}") from None


__all__ = ["ROUTING", "KernelFacts", "RoutingInput", "RoutingPlan", "RoutingProtocol", "get"]
