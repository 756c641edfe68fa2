"""Run a rendered lab on bare network namespaces: no Docker, no containerlab, no VyOS image.

One namespace per node named like containerlab's containers (clab-<lab>-<node>), veth pairs
straight between namespaces, VyOS gateways emulated from their config.boot, userspace tunnels
where the kernel has none. Nothing is created in the host's own namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from .. import dataplane, netlink
from ..emu import apply as emu_apply, vyos
from ..errors import RuntimeFailure
from ..labdir import RenderedLab
from . import state
from .base import DeployReport, NodeHandle, Progress, deploy_once, forget


TUN_MISSING = "/dev/net/tun is missing: this kernel has no tunnel module for the lab and userspace tunnels need TUN"


class NetnsNode:
    def __init__(self, name: str, ns: str) -> None:
        self.name = name
        self.ns = ns

    def exec(self, argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def netns(self) -> str:
        return self.ns


class NetnsRuntime:
    name = "netns"

    def __init__(self, tunnels: str = "auto") -> None:
        self.tunnels = tunnels   # auto | kernel | userspace

    def preflight(self, lab: RenderedLab) -> None:
        problems = []
        if os.geteuid() != 0:
            problems.append("the netns runtime needs root (network namespaces, veth, TUN devices)")
        if not shutil.which("ip"):
            problems.append("the `ip` command (iproute2) is missing: apt-get install iproute2")
        if self.tunnels == "userspace" and not os.path.exists("/dev/net/tun"):
            problems.append(TUN_MISSING)
        if problems:
            raise RuntimeFailure(*problems)

    def _ns(self, lab: RenderedLab, node: str) -> str:
        return lab.container(node)

    def deploy(self, lab: RenderedLab, progress: Progress) -> DeployReport:
        configs: dict[str, vyos.DeviceConfig] = {}

        def prepare(current: dict[str, Any] | None) -> dict[str, Any]:
            # Every gateway's config.boot is read and checked before anything exists: a bad line is
            # FILE:LINE with nothing to roll back, and the build applies exactly what was checked.
            configs.update(vyos.load_gateways(lab.nodes.values()))
            taken = [self._ns(lab, n) for n in lab.nodes if netlink.ns_exists(self._ns(lab, n))]
            if taken and not current:
                raise RuntimeFailure(f"namespaces {', '.join(taken)} exist but no clabgen state records them; "
                                     f"if they are leftovers, run: clabgen destroy {lab.dir}")
            self.preflight(lab)
            return {"namespaces": [self._ns(lab, n) for n in lab.nodes]}

        return deploy_once(self, lab, progress, prepare=prepare,
                           build=lambda report: self._deploy(lab, configs, state.state_dir(lab.name), progress, report))

    def _deploy(self, lab: RenderedLab, configs: dict[str, vyos.DeviceConfig], sdir: Path, progress: Progress,
                report: DeployReport) -> None:
        for n in lab.nodes:
            netlink.ns_create(self._ns(lab, n))
        progress(f"created {len(lab.nodes)} namespaces (clab-{lab.name}-*)")
        for link in lab.links:
            netlink.veth(self._ns(lab, link.a_node), link.a_if, self._ns(lab, link.b_node), link.b_if, link.mtu)
        progress(f"created {len(lab.links)} veth links")
        userspace: list[dict[str, Any]] = []
        applied: dict[str, tuple[vyos.DeviceConfig, emu_apply.Applied]] = {}
        for name, cfg in configs.items():
            ns = self._ns(lab, name)
            done = emu_apply.apply_links(ns, cfg, tunnels=self.tunnels, spec_netns=ns)
            userspace.extend(done.userspace)
            applied[name] = (cfg, done)
        if userspace:
            if not os.path.exists("/dev/net/tun"):
                raise RuntimeFailure(TUN_MISSING)
            pid = dataplane.start({"tunnels": userspace}, sdir)
            progress(f"userspace tunnel dataplane running (pid {pid}, {len(userspace)} tunnel ends)")
        for name, (cfg, done) in applied.items():
            emu_apply.apply_routes(self._ns(lab, name), cfg, done)
            kinds = [f"{t} (kernel)" for t in done.kernel_tunnels] + \
                    [f"{t['ifname']} (userspace {t['mode']})" for t in done.userspace if t["netns"] == self._ns(lab, name)]
            note = (f"{name}: VyOS dataplane emulated from {Path(cfg.file).name}"
                    f" ({done.interfaces} interfaces, tunnels: {', '.join(kinds) or 'none'}, {done.routes} static routes)")
            progress(note)
            for w in done.warnings:
                report.notes.append(f"{name}: {w}")
        for n in lab.nodes.values():
            for argv in n.exec:
                result = NetnsNode(n.name, self._ns(lab, n.name)).exec(argv)
                if result.returncode != 0:
                    raise RuntimeFailure(f"{n.name}: exec {' '.join(argv)!r} failed: {result.stderr.strip()}")
            if n.exec:
                progress(f"{n.name}: ran {len(n.exec)} exec lines")

    def destroy(self, lab: RenderedLab, progress: Progress) -> list[str]:
        removed: list[str] = []
        sdir = state.state_dir(lab.name)
        if dataplane.stop(sdir):
            removed.append("dataplane process")
        recorded = (state.read(lab.name) or {}).get("namespaces", [])
        for ns in dict.fromkeys([self._ns(lab, n) for n in lab.nodes] + list(recorded)):
            if netlink.ns_delete(ns):
                removed.append(f"netns {ns}")
        return forget(lab, removed, progress)

    def nodes(self, lab: RenderedLab) -> dict[str, NodeHandle]:
        current = state.read(lab.name)
        if not current or not current.get("deployed") or current.get("runtime") != self.name:
            raise RuntimeFailure(f"lab {lab.name} is not deployed on the netns runtime",
                                 f"deploy it: clabgen deploy {lab.dir} --runtime netns")
        return {n: NetnsNode(n, self._ns(lab, n)) for n in lab.nodes}

    def tunnel_state(self, lab: RenderedLab, node: str) -> list[dict[str, Any]]:
        info = dataplane.ready_info(state.state_dir(lab.name)) or {}
        return [t for t in info.get("tunnels", []) if t.get("netns") == self._ns(lab, node)]

    def inspect(self, lab: RenderedLab) -> dict[str, Any]:
        current = state.read(lab.name) or {}
        pid = dataplane.running_pid(state.state_dir(lab.name))
        nodes = {}
        for n in lab.nodes:
            ns = self._ns(lab, n)
            up = netlink.ns_exists(ns)
            nodes[n] = {"netns": ns, "state": "running" if up else "absent",
                        "interfaces": [{"name": link.ifname, "kind": link.kind, "mtu": link.mtu, "up": link.up}
                                       for link in netlink.links(ns) if link.ifname != "lo"] if up else []}
        return {"lab": lab.name, "runtime": self.name, "deployed": bool(current.get("deployed")),
                "dataplane_pid": pid, "nodes": nodes}
