"""Gateways run by their platform's emulator (clabgen.emu) where the vendor image is not used."""

from __future__ import annotations

from typing import Any

from .. import emu
from ..errors import RuntimeFailure
from ..labdir import LabNode, RenderedLab


def route_facts(node: LabNode) -> emu.RouteFacts:
    p = node.platform
    if p is None or p.static_proto is None:
        return emu.RouteFacts()
    return emu.RouteFacts(p.static_proto, p.static_metric)


def load_configs(lab: RenderedLab, only: set[str] | None = None) -> dict[str, tuple[emu.Emulator, Any]]:
    """Parse every gateway's startup config (or those in `only`) with its platform's emulator,
    before anything exists: a bad line is a FILE:LINE error and the deploy never starts."""
    out: dict[str, tuple[emu.Emulator, Any]] = {}
    for n in lab.nodes.values():
        if n.config is None or (only is not None and n.name not in only):
            continue
        if n.platform is None or n.platform.emulator is None:
            raise RuntimeFailure(f"{n.name}: platform {n.platform.name if n.platform else '?'} has no emulator; "
                                 "it runs only on its own image (docker/containerlab runtimes)")
        emulator = emu.get(n.platform.emulator)
        out[n.name] = (emulator, emulator.load(n.config))
    return out
