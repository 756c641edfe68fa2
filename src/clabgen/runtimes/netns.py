"""Run a rendered lab on bare network namespaces: no Docker, no containerlab, no VyOS image.

One namespace per node named like containerlab's containers (clab-<lab>-<node>), veth pairs
straight between namespaces, VyOS gateways emulated from their config.boot, userspace tunnels
where the kernel has none, FRR per gateway whose config has routing protocols (files under
<state>/frr/<node>). Nothing is created in the host's own namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import dataplane, emu, netlink
from ..emu.frrd import FrrDirs, vtysh_argv
from ..errors import RuntimeFailure
from ..labdir import RenderedLab
from . import leftovers, state
from .base import DeployReport, NodeHandle, Progress, deploy_once, forget
from .emulated import load_configs, route_facts
from .state import LabState

TUN_MISSING = "/dev/net/tun is missing: this kernel has no tunnel module for the lab and userspace tunnels need TUN"


def frr_dir(lab: RenderedLab, node: str) -> Path:
    """A gateway's FRR directory: the daemons see it as /run (emu.frrd)."""
    return state.state_dir(lab.name) / "frr" / node


def crypto_dir(lab: RenderedLab, node: str) -> Path:
    """A gateway's directory for wireguard-go and charon: they see it as /run (emu.rundir)."""
    return state.state_dir(lab.name) / "crypto" / node


def host_files(lab: RenderedLab, node: str) -> dict[str, Path]:
    """What a container of this node would see at each bind's target: the host file it binds."""
    out = {}
    for bind in lab.nodes[node].binds:
        src, _, rest = bind.partition(":")
        target = rest.split(":")[0]
        out[target] = Path(src) if src.startswith("/") else (lab.dir / src).resolve()
    return out


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
        configs: dict[str, tuple[emu.Emulator, Any]] = {}

        def prepare(current: LabState | None) -> dict[str, Any]:
            taken = [self._ns(lab, n) for n in lab.nodes if netlink.ns_exists(self._ns(lab, n))]
            if taken:
                raise RuntimeFailure(f"namespaces {', '.join(taken)} exist but no clabgen state records them; "
                                     f"if they are leftovers, run: clabgen destroy {lab.dir}")
            self.preflight(lab)
            configs.update(load_configs(lab))   # every startup config checked before anything exists
            missing = [f"{n}: {p}" for n, (emulator, cfg) in configs.items() for p in emulator.host_problems(cfg)]
            if missing:
                raise RuntimeFailure(*missing, *(["install FRR: apt-get install --no-install-recommends frr"]
                                                 if any("FRR" in m for m in missing) else []))
            return {"namespaces": tuple(self._ns(lab, n) for n in lab.nodes), "tunnels": self.tunnels}

        return deploy_once(self, lab, progress, prepare=prepare,
                           build=lambda report, _: self._deploy(lab, configs, progress, report))

    def _deploy(self, lab: RenderedLab, configs: dict[str, tuple[emu.Emulator, Any]], progress: Progress,
                report: DeployReport) -> None:
        sdir = state.state_dir(lab.name)
        for n in lab.nodes:
            netlink.ns_create(self._ns(lab, n))
        progress(f"created {len(lab.nodes)} namespaces (clab-{lab.name}-*)")
        for link in lab.links:
            netlink.veth(self._ns(lab, link.a_node), link.a_if, self._ns(lab, link.b_node), link.b_if, link.mtu)
        progress(f"created {len(lab.links)} veth links")
        userspace: list[dict[str, Any]] = []
        applied: dict[str, Any] = {}
        for name, (emulator, cfg) in configs.items():
            ns = self._ns(lab, name)
            done = emulator.apply_links(ns, cfg, tunnels=self.tunnels, spec_netns=ns, run_dir=crypto_dir(lab, name),
                                        files=host_files(lab, name))
            userspace.extend(done.userspace)
            applied[name] = done
        if userspace:
            if not os.path.exists("/dev/net/tun"):
                raise RuntimeFailure(TUN_MISSING)
            pid = dataplane.start({"tunnels": userspace}, sdir)
            progress(f"userspace tunnel dataplane running (pid {pid}, {len(userspace)} tunnel ends, "
                     f"{dataplane.impl_label(sdir)})")
            recorded = state.read(lab.name)
            if recorded is not None:
                state.write(replace(recorded, userspace_tunnels=len(userspace)))
        for name, done in applied.items():
            node = lab.nodes[name]
            emulator, cfg = configs[name]
            emulator.apply_routes(self._ns(lab, name), cfg, done, route_facts(node), frr_dir(lab, name))
            kinds = [f"{t} (kernel)" for t in done.kernel_tunnels] + \
                    [f"{t['ifname']} (userspace {t['mode']})" for t in done.userspace if t["netns"] == self._ns(lab, name)] + \
                    (done.crypto.describe() if getattr(done, "crypto", None) else [])
            config_name = node.config.name if node.config else "?"
            progress(f"{name}: {node.platform.name if node.platform else '?'} dataplane emulated from {config_name}"
                     f" ({done.interfaces} interfaces, tunnels: {', '.join(kinds) or 'none'}, {done.routes} static routes"
                     + (f", FRR: {', '.join(done.frr)}" if done.frr else "") + ")")
            for w in done.warnings:
                report.notes.append(f"{name}: {w}")
        for other in lab.nodes.values():
            for argv in other.exec:
                result = NetnsNode(other.name, self._ns(lab, other.name)).exec(argv)
                if result.returncode != 0:
                    raise RuntimeFailure(f"{other.name}: exec {' '.join(argv)!r} failed: {result.stderr.strip()}")
            if other.exec:
                progress(f"{other.name}: ran {len(other.exec)} exec lines")

    def destroy(self, lab: RenderedLab, progress: Progress) -> list[str]:
        """Everything the lab owns, found by name even when its state directory is gone."""
        removed: list[str] = []
        sdir = state.state_dir(lab.name)
        if dataplane.stop(sdir):
            removed.append("dataplane process")
        recorded = state.read_quietly(lab.name)
        names = list(dict.fromkeys([self._ns(lab, n) for n in lab.nodes] + list(recorded.namespaces if recorded else ())))
        for pid in leftovers.stop(leftovers.dataplanes_of(sdir)):
            removed.append(f"left-over process {pid}")
        # Routing daemons (and anything else) in the lab's namespaces die with them: no grace period
        # (FRR's own shutdown takes seconds); their files go with the state directory.
        killed = leftovers.stop(leftovers.in_namespaces(names), grace=False)
        if killed:
            removed.append(f"{len(killed)} processes in the lab's namespaces")
        for ns in names:
            if netlink.ns_delete(ns):
                removed.append(f"netns {ns}")
        return forget(lab, removed, progress)

    def nodes(self, lab: RenderedLab) -> dict[str, NodeHandle]:
        current = state.read(lab.name)
        if current is None or not current.deployed or current.runtime != self.name:
            raise RuntimeFailure(f"lab {lab.name} is not deployed on the netns runtime",
                                 f"deploy it: clabgen deploy {lab.dir} --runtime netns")
        return {n: NetnsNode(n, self._ns(lab, n)) for n in lab.nodes}

    def routing_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """vtysh against the node's FRR, to run in the node (its sockets are under the lab's state)."""
        sockets = FrrDirs(frr_dir(lab, node)).sockets
        if not sockets.is_dir():
            raise RuntimeFailure(f"{node} runs no routing daemons (its config has no protocols ospf, bgp or bfd, "
                                 f"or lab {lab.name} is not deployed)")
        return vtysh_argv(FrrDirs(frr_dir(lab, node)))

    def crypto_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """The prefix that runs `wg` or `swanctl` in the node against its own daemons (their /run)."""
        return [sys.executable, "-m", "clabgen.emu.rundir", str(crypto_dir(lab, node))]

    def tunnel_state(self, lab: RenderedLab, node: str) -> list[dict[str, Any]]:
        info = dataplane.ready_info(state.state_dir(lab.name)) or {}
        return [t for t in info.get("tunnels", []) if t.get("netns") == self._ns(lab, node)]

    def inspect(self, lab: RenderedLab) -> dict[str, Any]:
        current = state.read_quietly(lab.name)
        sdir = state.state_dir(lab.name)
        pid = dataplane.running_pid(sdir)
        info = dataplane.ready_info(sdir) if pid else None
        served = sum(1 for t in (info or {}).get("tunnels", ()))
        nodes = {}
        for n in lab.nodes:
            ns = self._ns(lab, n)
            up = netlink.ns_exists(ns)
            nodes[n] = {"netns": ns, "state": "running" if up else "absent",
                        "interfaces": [{"name": link.ifname, "kind": link.kind, "mtu": link.mtu, "up": link.up}
                                       for link in netlink.links(ns) if link.ifname != "lo"] if up else []}
        dp: dict[str, Any] = {"pid": pid, "state": "running" if pid else "not running", "tunnel_ends": served,
                              "impl": dataplane.impl_label(sdir) if info else None}
        if not pid and current is not None and current.userspace_tunnels:
            dp["state"] = f"dead (it served {current.userspace_tunnels} tunnel ends)"
        return {"lab": lab.name, "runtime": self.name, "deployed": bool(current and current.deployed),
                "dataplane": dp, "nodes": nodes}
