"""`clabgen fault`: take a tunnel or an underlay link down (or up again) on a running lab.

Links are set down in the nodes' namespaces (every runtime gives one), like a cable pulled: a
tunnel on both its ends, an underlay link on its gateway. When a link comes back, the static routes
the kernel dropped with it are put back as the platform installs them (FRR's staticd would do the
same on VyOS; netlink-installed routes need the help).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import netlink
from .contract import LabContract
from .errors import ClabgenError, Problem
from .labdir import RenderedLab
from .runtimes.base import NodeHandle, Progress


@dataclass(frozen=True)
class Fault:
    scenario: str                        # the contract's name for it: "tunnel X down", "underlay gw:eth2 down"
    links: tuple[tuple[str, str], ...]   # (node, interface) set down


def resolve(contract: LabContract, target: str) -> Fault:
    """A tunnel name, or GATEWAY:underlay (or GATEWAY:<its underlay interface>)."""
    for t in contract.tunnels:
        if t.name == target and t.policy:
            raise ClabgenError(Problem(None, f"tunnel {t.name} is policy-based IPsec: it has no interface to take down",
                                       f"take an underlay link down instead: {t.ends[0].node}:underlay"))
        if t.name == target:
            return Fault(f"tunnel {t.name} down", tuple((e.node, e.ifname) for e in t.ends))
    node, _, what = target.partition(":")
    gateways = {n.name: n for n in contract.nodes if n.role == "gateway"}
    if node in gateways:
        under = next((i.name for i in gateways[node].interfaces if i.role == "underlay"), None)
        if under and what in ("underlay", under):
            return Fault(f"underlay {node}:{under} down", ((node, under),))
    valid = [t.name for t in contract.tunnels if not t.policy] + [f"{g}:underlay" for g in gateways]
    raise ClabgenError(Problem(None, f"no tunnel or underlay link {target!r} in lab {contract.lab}",
                               f"valid: {', '.join(valid)}"))


def apply(lab: RenderedLab, handles: dict[str, NodeHandle], fault: Fault, *, up: bool, progress: Progress) -> None:
    for node, ifname in fault.links:
        netlink.set_link_state(handles[node].netns(), ifname, up)
        progress(f"{node}: {ifname} {'up' if up else 'down'}")
    if up:
        _restore_static_routes(lab, handles, {node for node, _ in fault.links})


def _restore_static_routes(lab: RenderedLab, handles: dict[str, NodeHandle], nodes: set[str]) -> None:
    for name in sorted(nodes):
        node = lab.contract.node(name)
        platform = lab.contract.platform(node.platform)
        proto = platform.static_proto if platform and platform.static_proto else "static"
        for r in node.routes:
            if r.proto == proto and r.via:
                netlink.add_route(handles[name].netns(), r.dst, via=r.via, dev=r.dev, proto=proto, metric=r.metric)
