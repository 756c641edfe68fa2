"""Routing protocols as a registry the plan reads: one entry per protocol.

An entry turns the lab's sites and tunnels into what each gateway's configuration declares
(static routes today) and is named by the intent's `routing:`. A new protocol is a module here,
an entry in ROUTING, template lines per platform and the platforms' `routing:` lists.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from .base import KernelFacts, RoutingInput, RoutingPlan, RoutingProtocol

# name -> (module in this package, class): a protocol's module is imported when a lab uses it
ROUTING: dict[str, tuple[str, str]] = {
    "static": ("static", "StaticRouting"),
    "ospf": ("ospf", "OspfRouting"),
    "bgp": ("bgp", "BgpRouting"),
}


@cache
def get(name: str) -> RoutingProtocol:
    """The registry entry; an unknown name lists the valid ones."""
    try:
        module, cls = ROUTING[name]
    except KeyError:
        raise ValueError(f"unknown routing protocol {name!r}; valid: {', '.join(sorted(ROUTING))}") from None
    protocol: RoutingProtocol = getattr(import_module(f".{module}", __name__), cls)()
    return protocol


__all__ = ["ROUTING", "KernelFacts", "RoutingInput", "RoutingPlan", "RoutingProtocol", "get"]
