"""Run a rendered lab on a Docker engine through the SDK, the way containerlab lays it out.

Containers clab-<lab>-<node> carry containerlab's labels; links are veth pairs made straight
between the containers' namespaces (pyroute2) with the topology's names and MTU; binds are
resolved against the lab directory; exec lines run once links are up. A gateway whose image the
engine lacks runs on clabgen/vyos-emu (VyOS dataplane emulated), a server on clabgen/node.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import netlink, secrets
from ..errors import RuntimeFailure
from ..labdir import LabNode, RenderedLab
from . import state
from .base import DeployReport, NodeHandle, Progress, deploy_once, forget
from .emulated import interfaces, load_configs
from .state import LabState

EMU_STATUS = "/run/clabgen/emu/status.json"
EMU_READY = "/run/clabgen/emu/dataplane.ready"


def connect() -> Any:
    """The engine at DOCKER_HOST or the default socket, or a clear error saying how to start one."""
    try:
        import docker
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise RuntimeFailure(f"no Docker engine answers at {where} ({type(exc).__name__})",
                             "start one with `make docker-up` (Debian's docker.io, no bridge, no iptables)") from None


class DockerNode:
    def __init__(self, name: str, container: Any) -> None:
        self.name = name
        self.container = container

    def exec(self, argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        # The engine's exec has no deadline: coreutils' timeout inside the node gives one (exit 124).
        wrapped = ["timeout", "-k", "2", f"{timeout:g}", *argv]
        code, (out, err) = self.container.exec_run(wrapped, demux=True)
        return subprocess.CompletedProcess(list(argv), code, (out or b"").decode(errors="replace"),
                                           (err or b"").decode(errors="replace"))

    def netns(self) -> str:
        self.container.reload()
        pid = self.container.attrs["State"]["Pid"]
        if not pid:
            raise RuntimeFailure(f"{self.container.name} is not running")
        return f"/proc/{pid}/ns/net"

    def read_json(self, path: str) -> dict[str, Any] | None:
        r = self.exec(["cat", path])
        try:
            return json.loads(r.stdout) if r.returncode == 0 else None
        except ValueError:
            return None


def labels(lab: RenderedLab, node: LabNode) -> dict[str, str]:
    """containerlab's own labels, so its tooling (and ours) finds the lab's containers."""
    return {"containerlab": lab.name, "clab-node-name": node.name, "clab-node-kind": node.kind,
            "clab-node-type": "", "clab-node-group": "", "clab-node-lab-dir": str(lab.dir / f"clab-{lab.name}" / node.name),
            "clab-topo-file": str(lab.topology), "clab-owner": "clabgen"}


class DockerRuntime:
    name = "docker"

    def __init__(self, tunnels: str = "auto") -> None:
        self._client: Any = None
        self.tunnels = tunnels   # the emulated gateways' tunnel backend: auto | kernel | bpf | userspace

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect()
        return self._client

    def preflight(self, lab: RenderedLab) -> None:
        if os.geteuid() != 0:
            raise RuntimeFailure("the docker runtime needs root (it wires veths into container namespaces)")
        check_backend(self.tunnels)
        _ = self.client

    def _foreign(self, lab: RenderedLab) -> list[str]:
        return foreign_containers(self.client, lab)

    def images_for(self, lab: RenderedLab, progress: Progress) -> dict[str, str]:
        """Each node's image: its own if the engine has it, else the local stand-in."""
        return images_for(self.client, lab, progress)

    def _binds(self, lab: RenderedLab, node: LabNode, progress: Progress) -> list[str]:
        out = []
        for bind in secrets.deploy_binds(lab, node, list(node.binds)):   # a config with deploy-time secrets
            src, _, rest = bind.partition(":")
            path = Path(src) if src.startswith("/") else (lab.dir / src).resolve()
            if not path.exists():
                # Docker would create a missing source on the host; never change the host.
                progress(f"{node.name}: bind {bind} skipped: {path} does not exist on this host")
                continue
            out.append(f"{path}:{rest}")
        return out

    def deploy(self, lab: RenderedLab, progress: Progress) -> DeployReport:
        images: dict[str, str] = {}

        def prepare(current: LabState | None) -> dict[str, Any]:
            # Gateways' startup configs are checked on the host before the engine is asked anything: a
            # bad line is FILE:LINE here, not a failed emulation inside a container (real VyOS would
            # refuse it too: the checks follow VyOS's own definitions).
            load_configs(lab, required=False)
            self.preflight(lab)
            foreign = self._foreign(lab)
            if foreign:
                raise RuntimeFailure(f"container name(s) {', '.join(foreign)} are taken by containers that are not "
                                     f"this lab's; left untouched", "remove or rename them, or rename the lab")
            leftover = leftover_containers(self.client, lab)
            if leftover:
                raise RuntimeFailure(f"containers {', '.join(leftover)} of lab {lab.name} exist but no clabgen state "
                                     "records them", f"if they are leftovers, run: clabgen destroy {lab.dir}")
            images.update(self.images_for(lab, progress))
            return {"containers": tuple(lab.container(n) for n in lab.nodes), "images": images}

        return deploy_once(self, lab, progress, prepare=prepare,
                           build=lambda _report, _state: self._deploy(lab, images, progress))

    def _start(self, lab: RenderedLab, node: LabNode, image: str, progress: Progress) -> Any:
        from ..images import node_host_config
        hc = node_host_config(self.client, network_mode="none", binds=self._binds(lab, node, progress))
        command = node.cmd.split() if node.cmd else None
        created = self.client.api.create_container(image, command=command, name=lab.container(node.name),
                                                   hostname=node.name, labels=labels(lab, node), host_config=hc,
                                                   environment=emulator_env(node, image, self.tunnels))
        self.client.api.start(created["Id"])
        return self.client.containers.get(created["Id"])

    def _deploy(self, lab: RenderedLab, images: dict[str, str], progress: Progress) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {n: pool.submit(self._start, lab, lab.nodes[n], images[n], progress) for n in lab.nodes}
            handles = {n: DockerNode(n, f.result()) for n, f in futures.items()}
        progress(f"started {len(handles)} containers (clab-{lab.name}-*)")
        for link in lab.links:
            netlink.veth(handles[link.a_node].netns(), link.a_if, handles[link.b_node].netns(), link.b_if, link.mtu)
        progress(f"created {len(lab.links)} veth links")
        for n in lab.nodes.values():
            for argv in n.exec:
                r = handles[n.name].exec(argv)
                if r.returncode != 0:
                    raise RuntimeFailure(f"{n.name}: exec {' '.join(argv)!r} failed: {(r.stderr or r.stdout).strip()}")
            if n.exec:
                progress(f"{n.name}: ran {len(n.exec)} exec lines")
        self._wait_emulated(lab, handles, images, progress)

    def _wait_emulated(self, lab: RenderedLab, handles: dict[str, DockerNode], images: dict[str, str],
                       progress: Progress, timeout: float = 60.0) -> None:
        wait_emulated(lab, handles, images, progress, timeout)

    def destroy(self, lab: RenderedLab, progress: Progress) -> list[str]:
        removed: list[str] = []
        try:
            client = self.client
        except RuntimeFailure:
            return forget(lab, removed, progress)
        for c in client.containers.list(all=True, filters={"label": f"containerlab={lab.name}"}):
            if c.labels.get("clab-owner") != "clabgen":
                continue
            c.remove(force=True)
            removed.append(f"container {c.name}")
        return forget(lab, removed, progress)

    def nodes(self, lab: RenderedLab) -> dict[str, NodeHandle]:
        out: dict[str, NodeHandle] = {}
        for n in lab.nodes:
            try:
                out[n] = DockerNode(n, self.client.containers.get(lab.container(n)))
            except Exception:
                raise RuntimeFailure(f"container {lab.container(n)} is missing; is lab {lab.name} deployed?") from None
        return out

    def tunnel_state(self, lab: RenderedLab, node: str) -> list[dict[str, Any]]:
        handle = self.nodes(lab)[node]
        assert isinstance(handle, DockerNode)
        ready = handle.read_json(EMU_READY) or {}
        return list(ready.get("tunnels", []))

    def crypto_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """`wg` and `swanctl` run in the container as they are (its /run is its own)."""
        return []

    def routing_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """vtysh in the container: the emulator's FRR (standard paths) or the vendor image's own."""
        return routing_cli(self.nodes(lab), node)

    def inspect(self, lab: RenderedLab) -> dict[str, Any]:
        nodes = {}
        for n in lab.nodes:
            try:
                c = self.client.containers.get(lab.container(n))
                nodes[n] = {"container": c.name, "state": c.status, "image": c.image.tags[0] if c.image.tags else c.image.id,
                            "interfaces": interfaces(DockerNode(n, c).netns()) if c.status == "running" else []}
            except Exception:
                nodes[n] = {"container": lab.container(n), "state": "absent", "interfaces": []}
        current = state.read_quietly(lab.name)
        return {"lab": lab.name, "runtime": self.name, "deployed": bool(current and current.deployed), "nodes": nodes}


# --- shared with the containerlab runtime (same containers, images and emulated gateways) -------


def foreign_containers(client: Any, lab: RenderedLab) -> list[str]:
    """Names clab-<lab>-<node> held by containers that are not this lab's node (never touched)."""
    import docker.errors
    out = []
    for n in lab.nodes.values():
        try:
            c = client.containers.get(lab.container(n.name))
        except docker.errors.NotFound:
            continue
        if c.labels.get("containerlab") != lab.name or c.labels.get("clab-node-name") != n.name:
            out.append(c.name)
    return out


def images_for(client: Any, lab: RenderedLab, progress: Progress) -> dict[str, str]:
    """Each node's image: its own if the engine has it, else the local stand-in: the image that
    carries its platform's emulator (the contract's emulator_image, e.g. clabgen/vyos-emu), or
    clabgen/node for servers and switches."""
    import docker.errors

    from ..images import ensure_images
    have: dict[str, bool] = {}
    chosen: dict[str, str] = {}
    built: dict[str, Any] | None = None
    for n in lab.nodes.values():
        if n.image not in have:
            try:
                client.images.get(n.image)
                have[n.image] = True
            except (docker.errors.APIError, docker.errors.NullResource, docker.errors.InvalidRepository):
                have[n.image] = False
        if have[n.image]:
            chosen[n.name] = n.image
            continue
        if built is None:
            try:
                built = ensure_images(client, log=progress)
            except RuntimeFailure:
                raise
            except Exception as exc:   # engine errors while building: one clear line, no traceback
                raise RuntimeFailure(f"cannot build the local node images: {type(exc).__name__}: {exc}") from exc
        recipe = n.platform.emulator_image if n.platform and n.platform.emulator_image else "node"
        if recipe not in built:
            raise RuntimeFailure(f"{n.name}: no local image recipe {recipe!r} (known: {', '.join(sorted(built))})")
        stand_in = built[recipe].name
        what = f"{n.platform.name} emulated" if recipe != "node" and n.platform else "generic Linux node"
        progress(f"{n.name}: image {n.image} is not in the engine; running {stand_in} ({what})")
        chosen[n.name] = stand_in
    return chosen


def wait_emulated(lab: RenderedLab, handles: dict[str, DockerNode], images: dict[str, str],
                  progress: Progress, timeout: float = 60.0) -> None:
    """Wait until every emulated gateway reports its applied startup config (status.json)."""
    waiting = set(emulated_nodes(lab, images))
    deadline = time.monotonic() + timeout
    while waiting:
        for n in sorted(waiting):
            status = handles[n].read_json(EMU_STATUS)
            if status is None:
                continue
            if not status.get("applied"):
                raise RuntimeFailure(f"{n}: the emulation of its startup config failed: {status.get('error')}")
            platform = lab.nodes[n].platform
            frr = status.get("frr") or []
            tunnels = (status.get('tunnels') or status['kernel_tunnels'] + status['userspace_tunnels']) + status.get('crypto', [])
            progress(f"{n}: {platform.name if platform else '?'} dataplane emulated "
                     f"({status['interfaces']} interfaces, "
                     f"tunnels: {', '.join(tunnels) or 'none'}, "
                     f"{status['routes']} static routes" + (f", FRR: {', '.join(frr)}" if frr else "") + ")")
            for w in status.get("warnings", []):
                progress(f"{n}: {w}")
            waiting.discard(n)
        if waiting and time.monotonic() > deadline:
            logs = handles[sorted(waiting)[0]].container.logs(tail=20).decode(errors="replace")
            raise RuntimeFailure(f"{', '.join(sorted(waiting))}: no VyOS emulation status after {timeout:.0f}s:\n{logs}")
        if waiting:
            time.sleep(0.05)


def routing_cli(handles: dict[str, NodeHandle], node: str) -> list[str]:
    """["vtysh"], unless the node is emulated and its status says it started no routing daemons."""
    handle = handles[node]
    status = handle.read_json(EMU_STATUS) if isinstance(handle, DockerNode) else None
    if status is not None and not status.get("frr"):
        raise RuntimeFailure(f"{node} runs no routing daemons (its config has no protocols ospf, bgp or bfd)")
    return ["vtysh"]


def emulated_nodes(lab: RenderedLab, images: dict[str, str]) -> list[str]:
    """Gateways that run their platform's emulator image rather than the vendor's own."""
    out = []
    for n in lab.nodes.values():
        recipe = n.platform.emulator_image if n.platform else None
        if recipe and n.config is not None and images.get(n.name, "").startswith(f"clabgen/{recipe}:"):
            out.append(n.name)
    return out


def emulator_env(node: LabNode, image: str, tunnels: str = "auto") -> dict[str, str]:
    """What the emulator in the stand-in image learns of the node's platform: how it installs
    static routes (the contract's facts; the image carries no templates), the tunnel backend asked
    for, and the BPF tunnel's program this host compiled (the image carries no compiler), or why
    there is none."""
    from ..dataplane import bpf
    from ..emu.boot import ROUTE_FACTS_ENV, TUNNELS_ENV
    p = node.platform
    if p and p.emulator_image and p.static_proto and image.startswith(f"clabgen/{p.emulator_image}:"):
        return {"CLABGEN_PLATFORM": p.name, ROUTE_FACTS_ENV: f"{p.static_proto}:{p.static_metric or ''}",
                **({TUNNELS_ENV: tunnels} if tunnels != "auto" else {}), **bpf.for_environment()}
    return {}


def check_backend(tunnels: str) -> None:
    """--tunnels names a backend the emulated gateways know."""
    from ..dataplane import backend_problem
    if why := backend_problem(tunnels):
        raise RuntimeFailure(why)


def leftover_containers(client: Any, lab: RenderedLab) -> list[str]:
    """This lab's containers (our labels) that no state records: a deploy whose records are gone."""
    if state.read_quietly(lab.name) is not None:
        return []
    found = client.containers.list(all=True, filters={"label": f"containerlab={lab.name}"})
    return sorted(c.name for c in found if c.labels.get("clab-owner") == "clabgen")
