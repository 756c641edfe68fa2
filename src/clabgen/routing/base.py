"""What a routing protocol gets from the plan and gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..planned import SiteInfo, StaticRoute, Tunnel


@dataclass(frozen=True)
class RoutingInput:
    """The lab as a routing protocol sees it: sites (each a LAN behind a gateway) and tunnels."""

    sites: tuple[SiteInfo, ...]
    tunnels: tuple[Tunnel, ...]


@dataclass(frozen=True)
class RoutingPlan:
    """Per gateway: the static routes its configuration declares."""

    static: Mapping[str, tuple[StaticRoute, ...]] = field(default_factory=dict)


class RoutingProtocol(Protocol):
    name: str

    def plan(self, lab: RoutingInput) -> RoutingPlan:
        """Derive every gateway's routing configuration; pure, deterministic."""
        ...
