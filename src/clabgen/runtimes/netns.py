"""Run a rendered lab on bare network namespaces: no Docker, no containerlab, no VyOS image.

One namespace per node named like containerlab's containers (clab-<lab>-<node>), veth pairs
straight between namespaces, VyOS gateways emulated from their config.boot, BPF or userspace
tunnels where the kernel has none (--tunnels, emu.apply.choose_backend), FRR per gateway whose
config has routing protocols (files under <state>/frr/<node>). Nothing is created in the host's own
namespace: BPF programs live on the gateways' interfaces and go with their namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from .. import dataplane, emu, netlink
from ..dataplane import backend_problem, bpf
from ..emu.frrd import FrrDirs, vtysh_argv
from ..errors import RuntimeFailure
from ..labdir import RenderedLab
from . import execlines, leftovers, state
from .base import DeployReport, NodeHandle, Progress, deploy_once, forget
from .emulated import interfaces, load_configs, route_facts
from .state import LabState

T = TypeVar("T")
TUN_MISSING = "/dev/net/tun is missing: this kernel has no tunnel module for the lab and userspace tunnels need TUN"


def frr_dir(lab: RenderedLab, node: str) -> Path:
    """A gateway's FRR directory: the daemons see it as /run (emu.frrd)."""
    return state.state_dir(lab.name) / "frr" / node


STEP = 25            # progress every STEP links or nodes on a big lab
QUIET_NODES = 30     # past this many nodes, per-node exec lines are counted, not listed
DATAPLANE_GRACE = 0.3   # seconds a destroy waits for the dataplane to exit on SIGTERM
WORKERS = 4          # gateways configured at once (FRR start-up waits overlap; rtnl_lock serialises the rest)


def _each(names: list[str], fn: Callable[[str], T], progress: Progress, what: str) -> list[T]:
    """fn for every name, a few at a time, results in order; the first failure is raised (after the
    others finished: no thread is left configuring a namespace the rollback is deleting)."""
    if len(names) < 2:
        return [fn(n) for n in names]
    out: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(names))) as pool:
        futures = {pool.submit(fn, n): n for n in names}
        for k, fut in enumerate(as_completed(futures), start=1):
            try:
                out[futures[fut]] = fut.result()
            except BaseException as exc:       # raised below, the first in name order
                errors[futures[fut]] = exc
            if len(names) > QUIET_NODES and k % STEP == 0 and k < len(names):
                progress(f"{what}: {k}/{len(names)}")
    if errors:
        raise next(errors[n] for n in names if n in errors)
    return [out[n] for n in names]


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
        self.tunnels = tunnels   # auto | kernel | bpf | userspace

    def preflight(self, lab: RenderedLab) -> None:
        problems = []
        if os.geteuid() != 0:
            problems.append("the netns runtime needs root (network namespaces, veth, TUN devices)")
        if not shutil.which("ip"):
            problems.append("the `ip` command (iproute2) is missing: apt-get install iproute2")
        if why := backend_problem(self.tunnels):
            problems.append(why)
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

        def build(report: DeployReport, _: LabState) -> None:
            with netlink.session():      # one netlink socket per namespace for the whole deploy
                self._deploy(lab, configs, progress, report)

        return deploy_once(self, lab, progress, prepare=prepare, build=build)

    def _deploy(self, lab: RenderedLab, configs: dict[str, tuple[emu.Emulator, Any]], progress: Progress,
                report: DeployReport) -> None:
        sdir = state.state_dir(lab.name)
        for n in lab.nodes:
            netlink.ns_create(self._ns(lab, n))
        progress(f"created {len(lab.nodes)} namespaces (clab-{lab.name}-*)")
        for k, link in enumerate(lab.links, start=1):
            netlink.veth(self._ns(lab, link.a_node), link.a_if, self._ns(lab, link.b_node), link.b_if, link.mtu)
            if k % STEP == 0 and k < len(lab.links):
                progress(f"veth links: {k}/{len(lab.links)}")
        progress(f"created {len(lab.links)} veth links")
        userspace: list[dict[str, Any]] = []
        def links_of(name: str) -> Any:
            emulator, cfg = configs[name]
            return emulator.apply_links(self._ns(lab, name), cfg, tunnels=self.tunnels, spec_netns=self._ns(lab, name),
                                        run_dir=crypto_dir(lab, name), files=host_files(lab, name))
        applied = dict(zip(configs, _each(list(configs), links_of, progress, "gateway interfaces and tunnels")))
        for done in applied.values():
            userspace.extend(done.userspace)
        ends = sum(len(done.bpf_tunnels) for done in applied.values())
        if ends:
            progress(f"BPF tunnels: {ends} tunnel ends, tc programs in the gateways' namespaces (no process)")
        if userspace:
            if not os.path.exists("/dev/net/tun"):
                raise RuntimeFailure(TUN_MISSING)
            pid = dataplane.start({"tunnels": userspace}, sdir)
            why = bpf.unavailable(userspace[0]["mode"]) if self.tunnels == "auto" else None
            progress(f"userspace tunnel dataplane running (pid {pid}, {len(userspace)} tunnel ends, "
                     f"{dataplane.impl_label(sdir)})" + (f"; no BPF tunnels: {why}" if why else ""))
            recorded = state.read(lab.name)
            if recorded is not None:
                state.write(replace(recorded, userspace_tunnels=len(userspace)))

        def routes_of(name: str) -> str:
            node, done = lab.nodes[name], applied[name]
            emulator, cfg = configs[name]
            emulator.apply_routes(self._ns(lab, name), cfg, done, route_facts(node), frr_dir(lab, name))
            kinds = [f"{t} (kernel)" for t in done.kernel_tunnels] + \
                    [f"{t['ifname']} (bpf {t['mode']})" for t in done.bpf_tunnels] + \
                    [f"{t['ifname']} (userspace {t['mode']})" for t in done.userspace if t["netns"] == self._ns(lab, name)] + \
                    (done.crypto.describe() if getattr(done, "crypto", None) else [])
            config_name = node.config.name if node.config else "?"
            return (f"{name}: {node.platform.name if node.platform else '?'} dataplane emulated from {config_name}"
                    f" ({done.interfaces} interfaces, tunnels: {', '.join(kinds) or 'none'}, {done.routes} static routes"
                    + (f", FRR: {', '.join(done.frr)}" if done.frr else "") + ")")
        for name, line in zip(applied, _each(list(applied), routes_of, progress, "gateway routes")):
            progress(line)
            for w in applied[name].warnings:
                report.notes.append(f"{name}: {w}")
        for k, other in enumerate((n for n in lab.nodes.values() if n.exec), start=1):
            ns = self._ns(lab, other.name)
            through = 0
            for argv in other.exec:
                if execlines.as_netlink(ns, argv) is not None:
                    refused = execlines.apply(ns, argv)
                    through += 1
                    if refused:
                        raise RuntimeFailure(f"{other.name}: exec {' '.join(argv)!r} failed: {refused}")
                    continue
                result = NetnsNode(other.name, ns).exec(argv)
                if result.returncode != 0:
                    raise RuntimeFailure(f"{other.name}: exec {' '.join(argv)!r} failed: {result.stderr.strip()}")
            if len(lab.nodes) <= QUIET_NODES:
                progress(f"{other.name}: ran {len(other.exec)} exec lines" +
                         (f" ({through} through netlink)" if through == len(other.exec) else
                          f" ({through} through netlink, {len(other.exec) - through} as commands)"))
            elif k % STEP == 0:
                progress(f"exec lines: {k} nodes done")

    def destroy(self, lab: RenderedLab, progress: Progress) -> list[str]:
        """Everything the lab owns, found by name even when its state directory is gone."""
        removed: list[str] = []
        sdir = state.state_dir(lab.name)
        # The namespaces, and the TUN devices in them, go anyway: the dataplane gets a moment to
        # exit on SIGTERM (with a hundred tunnel ends its threads take seconds), then SIGKILL.
        if dataplane.stop(sdir, timeout=DATAPLANE_GRACE):
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
        """What the dataplane says it serves; nothing when it is not running (its TUN devices may
        outlive it by a moment)."""
        sdir = state.state_dir(lab.name)
        if not dataplane.running_pid(sdir):
            return []
        info = dataplane.ready_info(sdir) or {}
        return [t for t in info.get("tunnels", []) if t.get("netns") == self._ns(lab, node)]

    def inspect(self, lab: RenderedLab) -> dict[str, Any]:
        current = state.read_quietly(lab.name)
        sdir = state.state_dir(lab.name)
        pid = dataplane.running_pid(sdir)
        info = dataplane.ready_info(sdir) if pid else None
        served = sum(1 for t in (info or {}).get("tunnels", ()))
        nodes = {}
        bpf_ends = 0
        for n in lab.nodes:
            ns = self._ns(lab, n)
            up = netlink.ns_exists(ns)
            links = interfaces(ns) if up else []
            bpf_ends += sum(1 for i in links if str(i["kind"]).startswith("bpf ") and i["kind"] != "bpf peer")
            nodes[n] = {"netns": ns, "state": "running" if up else "absent", "interfaces": links}
        dp: dict[str, Any] = {"pid": pid, "state": "running" if pid else "not running", "tunnel_ends": served,
                              "impl": dataplane.impl_label(sdir) if info else None}
        if not pid and current is not None and current.userspace_tunnels:
            dp["state"] = f"dead (it served {current.userspace_tunnels} tunnel ends)"
        return {"lab": lab.name, "runtime": self.name, "deployed": bool(current and current.deployed),
                "dataplane": dp, "bpf": {"tunnel_ends": bpf_ends}, "nodes": nodes}
