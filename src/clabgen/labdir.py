"""A rendered lab on disk: its topology (links, node definitions) and its typed lab contract.

Runtimes take nodes and links from the containerlab topology, as containerlab would, and
everything else (roles, platforms, startup configs, what to verify) from expected.json.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .contract import FILE as CONTRACT_FILE
from .contract import LabContract, PlatformSpec
from .errors import ClabgenError, Problem, Where


@dataclass(frozen=True)
class LabNode:
    name: str
    kind: str
    image: str
    cmd: str | None
    binds: tuple[str, ...]
    exec: tuple[tuple[str, ...], ...]   # argv lists, split like containerlab does
    role: str                            # from the contract: gateway | server | switch
    platform: PlatformSpec | None        # a gateway's platform facts, from the contract
    config: Path | None                  # a gateway's startup config (config.boot)


@dataclass(frozen=True)
class LabLink:
    a_node: str
    a_if: str
    b_node: str
    b_if: str
    mtu: int


@dataclass(frozen=True)
class RenderedLab:
    name: str
    dir: Path
    topology: Path
    nodes: dict[str, LabNode]
    links: tuple[LabLink, ...]
    contract: LabContract

    def container(self, node: str) -> str:
        """containerlab's naming: clab-<lab>-<node>; the netns runtime uses it for namespaces too."""
        return f"clab-{self.name}-{node}"


def _link(raw: dict[str, Any], where: Where) -> LabLink:
    mtu = int(raw.get("mtu", 9500))
    eps = raw.get("endpoints") or []
    if len(eps) != 2:
        raise ClabgenError(Problem(where, "a link needs two endpoints"))
    parts = []
    for ep in eps:
        if isinstance(ep, str):
            node, _, ifname = ep.partition(":")
        else:
            node, ifname = ep.get("node"), ep.get("interface")
        parts.append((str(node), str(ifname)))
    return LabLink(parts[0][0], parts[0][1], parts[1][0], parts[1][1], mtu)


def load(path: Path) -> RenderedLab:
    """Read LAB (a directory holding one *.clab.yml and expected.json)."""
    lab_dir = path if path.is_dir() else path.parent
    topos = sorted(lab_dir.glob("*.clab.yml"))
    if len(topos) != 1:
        raise ClabgenError(Problem(Where(str(lab_dir)), f"expected one *.clab.yml in the lab directory, found {len(topos)}",
                                   "render the intent first: clabgen render INTENT"))
    contract = LabContract.load(lab_dir / CONTRACT_FILE)
    try:
        topo = yaml.safe_load(topos[0].read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ClabgenError(Problem(Where(str(exc.filename)), "missing; render the intent first")) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ClabgenError(Problem(Where(str(topos[0])), f"cannot parse: {exc}")) from None
    where = Where(str(topos[0]))
    if not isinstance(topo, dict) or not isinstance(topo.get("topology"), dict):
        raise ClabgenError(Problem(where, "not a containerlab topology (no `topology:` mapping)"))
    if topo.get("name") != contract.lab:
        raise ClabgenError(Problem(where.at("name"), f"lab {topo.get('name')!r} but expected.json is for "
                                   f"{contract.lab!r}", "render the lab again"))
    specs = {n.name: n for n in contract.nodes}
    nodes: dict[str, LabNode] = {}
    for name, raw in (topo["topology"].get("nodes") or {}).items():
        spec = specs.get(str(name))
        if spec is None:
            raise ClabgenError(Problem(where.at(f"topology.nodes.{name}"), "node is not in expected.json",
                                       "render the lab again"))
        execs = tuple(tuple(shlex.split(str(e))) for e in raw.get("exec") or ())
        nodes[str(name)] = LabNode(str(name), str(raw.get("kind", "linux")), str(raw.get("image", "")),
                                   raw.get("cmd"), tuple(str(b) for b in raw.get("binds") or ()), execs,
                                   spec.role, contract.platform(spec.platform),
                                   (lab_dir / spec.config).resolve() if spec.config else None)
    links = tuple(_link(raw, where) for raw in topo["topology"].get("links") or ())
    return RenderedLab(contract.lab, lab_dir.resolve(), topos[0].resolve(), nodes, links, contract)


def resolve(arg: Path) -> RenderedLab:
    """LAB may be a rendered lab directory or its intent file (rendered first, in place)."""
    if arg.is_file() and arg.suffix in (".yml", ".yaml") and not arg.name.endswith(".clab.yml"):
        from .pipeline import render_intent
        render_intent(arg)
        return load(arg.parent)
    if arg.is_file():
        return load(arg.parent)
    if not arg.exists():
        raise ClabgenError(Problem(Where(str(arg)), "no such lab directory or intent file"))
    return load(arg)
