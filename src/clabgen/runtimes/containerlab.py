"""Run a rendered lab with containerlab itself ($CLABGEN_CONTAINERLAB or `containerlab` on PATH).

containerlab creates the containers clab-<lab>-<node>, wires the links (veth pairs, MTU 9500 by
default), mounts the startup configs and runs the exec lines. clabgen never edits the checked-in
topology: it renders a variant into the lab's state directory (/run/clabgen/<lab>/<lab>.clab.yml)
with the images this engine has, absolute bind sources, the node options this host needs and a
private management network, and points CLAB_LABDIR_BASE there so nothing is written into the repo.
Verify then talks to the same containers as the docker runtime does (exec, /proc/PID/ns/net).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from .. import secrets
from ..errors import RuntimeFailure
from ..labdir import RenderedLab
from . import state
from .base import DeployReport, NodeHandle, Progress, deploy_once, forget
from .docker import (
    DockerNode,
    DockerRuntime,
    check_backend,
    emulator_env,
    foreign_containers,
    images_for,
    wait_emulated,
)
from .emulated import interfaces, load_configs
from .state import LabState, MgmtState

# Management subnets come from this pool, one small block per lab (never the default 172.20.20.0/24).
MGMT_POOL = IPv4Network("172.31.128.0/17")
TIMEOUT = 300.0


BINARY_ENV = "CLABGEN_CONTAINERLAB"


def find_binary() -> Path | None:
    """$CLABGEN_CONTAINERLAB (the Makefile points it at the patched bin/containerlab of a
    checkout: docs/containerlab.md), else `containerlab` on PATH."""
    given = os.environ.get(BINARY_ENV)
    if given and os.path.isfile(given) and os.access(given, os.X_OK):
        return Path(given)
    found = shutil.which("containerlab")
    return Path(found) if found else None


def variant_path(lab: str) -> Path:
    return state.state_dir(lab) / f"{lab}.clab.yml"


def clab_env(lab: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """No version check (it would HEAD github.com); lab dirs (.tls, inventories) in the state dir."""
    return {**(os.environ if base is None else base), "CLAB_VERSION_CHECK": "disable",
            "CLAB_LABDIR_BASE": str(state.state_dir(lab))}


def command(binary: Path, verb: str, topology: Path) -> list[str]:
    """The argv of one containerlab call on a variant topology (no shell)."""
    extra = {"deploy": [], "inspect": ["-f", "json"], "destroy": ["--cleanup"]}
    if verb not in extra:
        raise ValueError(f"unknown containerlab verb {verb!r}")
    return [str(binary), verb, "-t", str(topology), *extra[verb]]


# --- the variant topology -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mgmt:
    """A private management network per lab: own name, own host bridge, small subnet, no firewall."""

    network: str
    bridge: str
    ipv4_subnet: str

    def topology(self) -> dict[str, Any]:
        return {"network": self.network, "bridge": self.bridge, "ipv4-subnet": self.ipv4_subnet,
                "ipv6-subnet": "", "external-access": False}


def mgmt_for(lab: str, nodes: int, taken: Iterable[IPv4Network] = ()) -> Mgmt:
    """Network clab-<lab>, bridge br-<lab> (or br-<hash> past 15 chars), and the first free block of
    MGMT_POOL from a slot derived from the lab name, big enough for the nodes and the gateway."""
    digest = hashlib.sha256(lab.encode()).hexdigest()
    bridge = f"br-{lab}" if len(f"br-{lab}") <= 15 else f"br-{digest[:12]}"
    size = 16
    while size < nodes + 4:          # network, gateway, broadcast, one spare
        size *= 2
    prefix = 32 - size.bit_length() + 1
    blocks = list(MGMT_POOL.subnets(new_prefix=prefix))
    busy = list(taken)
    start = int(digest[12:20], 16) % len(blocks)
    for i in range(len(blocks)):
        block = blocks[(start + i) % len(blocks)]
        if not any(block.overlaps(t) for t in busy):
            return Mgmt(f"clab-{lab}", bridge, str(block))
    raise RuntimeFailure(f"no free /{prefix} management subnet left in {MGMT_POOL}")


def variant_topology(raw: dict[str, Any], lab_dir: Path, images: dict[str, str], mgmt: Mgmt,
                     node_options: dict[str, Any], *, exists: Callable[[Path], bool] = Path.exists,
                     env: dict[str, dict[str, str]] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The lab's topology as this host can run it, and a note per change worth telling.

    Images the engine lacks are replaced (`images`: node -> image to run), relative bind sources
    become absolute paths into the lab directory, absolute ones missing here are dropped (containerlab
    refuses them), every node gets `node_options` (and its `env` entries), the lab its own mgmt
    network. exec, cmd, links and everything else stay as they are. `raw` is not modified.
    """
    notes: list[str] = []
    topo = {k: v for k, v in raw.items() if k not in ("mgmt", "topology")}
    topo["mgmt"] = mgmt.topology()
    raw_body = dict(raw.get("topology") or {})
    body = {"defaults": {**(raw_body.pop("defaults", None) or {}), **node_options}, **raw_body}
    nodes: dict[str, Any] = {}
    for name, node in (body.get("nodes") or {}).items():
        node = dict(node or {})
        if name in images and images[name] != node.get("image"):
            node["image"] = images[name]
        binds = []
        for bind in node.get("binds") or ():
            src, _, rest = str(bind).partition(":")
            if src.startswith("/"):
                path = Path(src)
                if not exists(path):
                    notes.append(f"{name}: bind {bind} dropped: {path} does not exist on this host")
                    continue
            else:
                path = (lab_dir / src).resolve()
            binds.append(f"{path}:{rest}")
        if "binds" in node:
            node["binds"] = binds
        if env and env.get(name):
            node["env"] = {**(node.get("env") or {}), **env[name]}
        nodes[name] = node
    body["nodes"] = nodes
    topo["topology"] = body
    return topo, notes


# --- containerlab inspect -------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectedNode:
    node: str            # the topology's node name
    container: str       # clab-<lab>-<node>
    state: str           # running | exited | ...
    image: str
    kind: str
    mgmt_ipv4: str       # "172.31.x.y/28" or "" (N/A)


def parse_inspect(text: str, lab: str) -> dict[str, InspectedNode]:
    """`containerlab inspect -f json` -> node name -> InspectedNode (the lab's entries only).

    0.69 prints {"<lab>": [ {name, image, kind, state, ipv4_address, lab_name, ...}, ... ]};
    older releases printed {"containers": [...]}; both are read.
    """
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise RuntimeFailure(f"containerlab inspect printed no JSON: {exc}: {text[:200]!r}") from None
    entries = data.get(lab, data.get("containers", [])) if isinstance(data, dict) else data
    prefix = f"clab-{lab}-"
    out: dict[str, InspectedNode] = {}
    for e in entries or []:
        if e.get("lab_name", lab) != lab:
            continue
        name = str(e.get("name", ""))
        node = name[len(prefix):] if name.startswith(prefix) else name
        ipv4 = str(e.get("ipv4_address", ""))
        out[node] = InspectedNode(node, name, str(e.get("state", "")), str(e.get("image", "")),
                                  str(e.get("kind", "")), "" if ipv4 in ("N/A", "") else ipv4)
    return out


# --- the runtime ----------------------------------------------------------------------------------


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def exec_failures(log: str) -> list[str]:
    """containerlab logs a failed `exec:` line (`ERRO Failed to execute command ...` plus indented
    stderr lines) but still exits 0; the docker runtime fails the deploy then, so this one does too."""
    out: list[str] = []
    lines = ANSI.sub("", log).splitlines()
    for i, line in enumerate(lines):
        if "Failed to execute command" not in line:
            continue
        detail = [line.split("Failed to execute command", 1)[1].strip()]
        for more in lines[i + 1:]:
            if not more.startswith((" ", "\t")):
                break
            text = more.strip().lstrip("│").strip()
            if text and text != "stderr=":
                detail.append(text)
        out.append(" ".join(detail))
    return out


def mgmt_networks(client: Any, lab: str) -> list[Any]:
    """The engine's network clab-<lab> (the engine's name filter also matches longer names)."""
    return [n for n in client.networks.list(names=[f"clab-{lab}"]) if n.name == f"clab-{lab}"]


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 12) -> str:
    text = "\n".join((proc.stderr or "").splitlines() + (proc.stdout or "").splitlines())
    return "\n".join(text.splitlines()[-lines:])


class ContainerlabRuntime:
    name = "containerlab"

    def __init__(self, binary: Path | None = None, tunnels: str = "auto") -> None:
        self._binary = binary
        self._docker = DockerRuntime(tunnels)

    @property
    def client(self) -> Any:
        return self._docker.client

    @property
    def binary(self) -> Path:
        found = self._binary or find_binary()
        if found is None:
            raise RuntimeFailure(f"containerlab is not installed: ${BINARY_ENV} names no executable and none is on PATH",
                                 "build it with `make containerlab` (patched 0.69.3, docs/containerlab.md)")
        return found

    def _run(self, verb: str, lab: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command(self.binary, verb, variant_path(lab)), capture_output=True, text=True,
                              env=clab_env(lab), timeout=timeout, stdin=subprocess.DEVNULL)

    def preflight(self, lab: RenderedLab) -> None:
        if os.geteuid() != 0:
            raise RuntimeFailure("the containerlab runtime needs root (containerlab creates veths and edits /etc/hosts)")
        check_backend(self._docker.tunnels)
        _ = self.binary
        _ = self.client

    def _mgmt(self, lab: RenderedLab) -> Mgmt:
        taken = []
        for net in self.client.networks.list():
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                try:
                    taken.append(IPv4Network(cfg.get("Subnet", ""), strict=False))
                except ValueError:
                    pass     # IPv6 or empty
        return mgmt_for(lab.name, len(lab.nodes), taken)

    def _write_variant(self, lab: RenderedLab, images: dict[str, str], mgmt: Mgmt) -> list[str]:
        from ..images import CONTAINERLAB_NODE_OPTIONS
        raw = yaml.safe_load(lab.topology.read_text(encoding="utf-8"))
        for n, node in lab.nodes.items():      # a config with deploy-time secrets: its private copy
            spec = ((raw.get("topology") or {}).get("nodes") or {}).get(n) or {}
            if spec.get("binds"):
                spec["binds"] = secrets.deploy_binds(lab, node, [str(b) for b in spec["binds"]])
        env = {n: emulator_env(node, images[n], self._docker.tunnels) for n, node in lab.nodes.items() if n in images}
        topo, notes = variant_topology(raw, lab.dir, images, mgmt, CONTAINERLAB_NODE_OPTIONS, env=env)
        path = variant_path(lab.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"# rendered by clabgen's containerlab runtime from {lab.topology}\n"
                       + yaml.safe_dump(topo, sort_keys=False), encoding="utf-8")
        os.replace(tmp, path)
        return notes

    def deploy(self, lab: RenderedLab, progress: Progress) -> DeployReport:
        chosen: dict[str, Any] = {}

        def prepare(current: LabState | None) -> dict[str, Any]:
            load_configs(lab, required=False)   # FILE:LINE before containerlab runs (see docker.py)
            self.preflight(lab)
            foreign = foreign_containers(self.client, lab)
            if foreign:
                raise RuntimeFailure(f"container name(s) {', '.join(foreign)} are taken by containers that are not "
                                     f"this lab's; left untouched", "remove or rename them, or rename the lab")
            if mgmt_networks(self.client, lab.name) and not current:
                raise RuntimeFailure(f"a docker network clab-{lab.name} exists but no clabgen state records it; left "
                                     f"untouched", f"if it is a leftover, remove it: docker network rm clab-{lab.name}")
            chosen["images"] = images_for(self.client, lab, progress)
            chosen["mgmt"] = mgmt = self._mgmt(lab)
            return {"topology": str(variant_path(lab.name)), "binary": str(self.binary),
                    "mgmt": MgmtState(mgmt.network, mgmt.bridge, mgmt.ipv4_subnet), "images": chosen["images"],
                    "containers": tuple(lab.container(n) for n in lab.nodes)}

        return deploy_once(self, lab, progress, prepare=prepare,
                           build=lambda _report, _state: self._deploy(lab, chosen["images"], chosen["mgmt"], progress))

    def _deploy(self, lab: RenderedLab, images: dict[str, str], mgmt: Mgmt, progress: Progress) -> None:
        for note in self._write_variant(lab, images, mgmt):
            progress(note)
        variant = variant_path(lab.name)
        progress(f"variant topology {variant} (mgmt network {mgmt.network}, bridge {mgmt.bridge}, {mgmt.ipv4_subnet})")
        t = time.monotonic()
        proc = self._run("deploy", lab.name)
        if proc.returncode != 0:
            raise RuntimeFailure(f"containerlab deploy of {lab.name} failed (exit {proc.returncode}):\n{_tail(proc)}")
        failed = exec_failures(proc.stderr + proc.stdout)
        if failed:
            raise RuntimeFailure(*(f"exec failed: {f}" for f in failed))
        progress(f"containerlab deployed {len(lab.nodes)} nodes and {len(lab.links)} links "
                 f"in {time.monotonic() - t:.2f}s (clab-{lab.name}-*)")
        found = self.inspect_nodes(lab)
        down = [n for n in lab.nodes if n not in found or found[n].state != "running"]
        if down:
            states = [f"{n} ({found[n].state if n in found else 'absent'})" for n in down]
            raise RuntimeFailure(f"containerlab reports node(s) not running: {', '.join(states)}")
        handles = {n: DockerNode(n, self.client.containers.get(found[n].container)) for n in lab.nodes}
        wait_emulated(lab, handles, images, progress)

    def inspect_nodes(self, lab: RenderedLab) -> dict[str, InspectedNode]:
        proc = self._run("inspect", lab.name, timeout=60)
        if proc.returncode != 0:
            raise RuntimeFailure(f"containerlab inspect of {lab.name} failed (exit {proc.returncode}):\n{_tail(proc)}")
        return parse_inspect(proc.stdout, lab.name)

    def destroy(self, lab: RenderedLab, progress: Progress) -> list[str]:
        removed: list[str] = []
        variant = variant_path(lab.name)
        try:
            client = self.client
        except RuntimeFailure as exc:
            client = None
            if state.read_quietly(lab.name):
                progress(f"{exc.problems[0].message}: cannot reach the lab's containers; only its state directory is removed")
        binary = self._binary or find_binary()
        if client is not None and binary is not None:
            ours = client.containers.list(all=True, filters={"label": f"containerlab={lab.name}"})
            ours = [c for c in ours if c.labels.get("clab-topo-file") == str(variant)]
            net = mgmt_networks(client, lab.name)
            if not variant.is_file() and (ours or net):
                # The state dir is gone (e.g. /run after a reboot) but the lab is not: render the
                # variant again (same path, the lab's own images) so containerlab can tear it down.
                mg = mgmt_for(lab.name, len(lab.nodes))
                cfgs = ((net[0].attrs.get("IPAM") or {}).get("Config") or []) if net else []
                subnet = next((c["Subnet"] for c in cfgs if c.get("Subnet")), mg.ipv4_subnet)
                self._write_variant(lab, {}, Mgmt(mg.network, mg.bridge, subnet))
            if variant.is_file():
                proc = self._run("destroy", lab.name)
                if proc.returncode == 0:
                    if ours or net:
                        removed.append(f"containerlab lab {lab.name} ({len(ours)} containers, mgmt network clab-{lab.name})")
                else:
                    progress(f"containerlab destroy failed (exit {proc.returncode}); removing containers directly:\n"
                             f"{_tail(proc)}")
            for c in client.containers.list(all=True, filters={"label": f"containerlab={lab.name}"}):
                if c.labels.get("clab-topo-file") == str(variant):
                    c.remove(force=True)
                    removed.append(f"container {c.name}")
            for n in mgmt_networks(client, lab.name):
                n.reload()
                if not n.attrs.get("Containers"):
                    n.remove()
                    removed.append(f"network {n.name}")
        return forget(lab, removed, progress)

    def nodes(self, lab: RenderedLab) -> dict[str, NodeHandle]:
        return self._docker.nodes(lab)

    def tunnel_state(self, lab: RenderedLab, node: str) -> list[dict[str, Any]]:
        return self._docker.tunnel_state(lab, node)

    def crypto_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """`wg` and `swanctl` run in the container as they are (its /run is its own)."""
        return []

    def routing_cli(self, lab: RenderedLab, node: str) -> list[str]:
        return self._docker.routing_cli(lab, node)

    def inspect(self, lab: RenderedLab) -> dict[str, Any]:
        current = state.read_quietly(lab.name)
        found = self.inspect_nodes(lab) if variant_path(lab.name).is_file() else {}
        nodes: dict[str, dict[str, Any]] = {}
        for n in lab.nodes:
            node = found.get(n)
            if node is None:
                nodes[n] = {"container": lab.container(n), "state": "absent", "interfaces": []}
                continue
            links: list[dict[str, Any]] = []
            if node.state == "running":   # a BPF tunnel end shows as `bpf <mode>` (emulated.interfaces)
                links = interfaces(DockerNode(n, self.client.containers.get(node.container)).netns())
            nodes[n] = {"container": node.container, "state": node.state, "image": node.image,
                        "mgmt_ipv4": node.mgmt_ipv4, "interfaces": links}
        return {"lab": lab.name, "runtime": self.name, "deployed": bool(current and current.deployed),
                "topology": str(variant_path(lab.name)),
                "mgmt": (current.mgmt.__dict__ if current and current.mgmt else None), "nodes": nodes}
