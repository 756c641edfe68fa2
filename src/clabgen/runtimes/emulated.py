"""Gateways run by their platform's emulator (clabgen.emu) where the vendor image is not used."""

from __future__ import annotations

from typing import Any

from .. import emu, netlink, secrets
from ..dataplane import bpf
from ..errors import ClabgenError, Problem
from ..labdir import LabNode, RenderedLab


def route_facts(node: LabNode) -> emu.RouteFacts:
    p = node.platform
    if p is None or p.static_proto is None:
        return emu.RouteFacts()
    return emu.RouteFacts(p.static_proto, p.static_metric)


def load_configs(lab: RenderedLab, *, required: bool = True) -> dict[str, tuple[emu.Emulator, Any]]:
    """Parse and check every gateway's startup config with its platform's emulator before anything
    exists: a bad line is FILE:LINE (all files' problems in one error) and the deploy never starts.

    required: every gateway must have an emulator (netns); else gateways without one are skipped
    (docker and containerlab can run the vendor's own image)."""
    out: dict[str, tuple[emu.Emulator, Any]] = {}
    problems: list[Problem] = []
    copies = secrets.prepare(lab)     # configs with deploy-time secrets, filled in privately
    for n in lab.nodes.values():
        if n.config is None:
            continue
        if n.platform is None or n.platform.emulator is None:
            if required:
                problems.append(Problem(None, f"{n.name}: platform {n.platform.name if n.platform else '?'} has no "
                                              "emulator; it runs only on its own image (docker/containerlab)"))
            continue
        emulator = emu.get(n.platform.emulator)
        try:
            out[n.name] = (emulator, emulator.load(copies.get(n.name, n.config)))
        except ClabgenError as exc:
            problems.extend(exc.problems)
    if problems:
        secrets.remove(lab.name)
        raise ClabgenError(*problems)
    return out


def interfaces(ns: str) -> list[dict[str, Any]]:
    """A node's interfaces for inspect; a BPF tunnel end (which an emulated gateway may run) shows as
    `bpf <mode>` and its veth peer as `bpf peer`, read back from the kernel like every other kind."""
    ends = bpf.tunnels_in(ns)
    peers = {t.peer for t in ends.values()}
    out = []
    for link in netlink.links(ns):
        if link.ifname == "lo":
            continue
        kind = f"bpf {ends[link.ifname].mode}" if link.ifname in ends else "bpf peer" if link.ifname in peers \
            else link.kind
        out.append({"name": link.ifname, "kind": kind, "mtu": link.mtu, "up": link.up})
    return out
