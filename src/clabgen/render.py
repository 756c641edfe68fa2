"""Plan -> {relative path: bytes} through the platform templates, then one careful write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import platforms, vyos_config
from .errors import ClabgenError, Problem, Where
from .expected import expected_json
from .plan import CLAB_DEFAULT_MTU, Hop, Plan
from .tunnels import TUNNEL_TYPES

MANIFEST = ".clabgen-manifest.json"


@dataclass(frozen=True)
class RenderedFile:
    path: str
    data: bytes
    mode: int = 0o644


def _env(folders: tuple[Path, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)


def _hop_text(h: Hop) -> str:
    if h.route is None and h.out_if is None:
        return f"**{h.node}** receives it on {h.in_if}: the destination is its own address."
    if h.route is None:
        return f"**{h.node}** {h.note}."
    where = f" (in on {h.in_if})" if h.in_if else ""
    text = f"**{h.node}**{where} matches `{h.route}` and sends it out of {h.out_if}"
    return text + (f"; {h.note}." if h.note else ".")


def view(plan: Plan, source: str) -> dict[str, Any]:
    """Flatten the plan into plain data for templates (formatting only, no decisions)."""
    # Mermaid ids: node names may be Mermaid words (`end`) or hold `--`, so the diagram numbers them.
    ids = {n.name: f"n{i}" for i, n in enumerate(plan.nodes)}
    nodes = []
    for n in plan.nodes:
        ifaces = [{"name": i.name, "address": str(i.address) if i.address else None, "mtu": i.mtu,
                   "peer": i.peer, "role": i.role} for i in n.interfaces]
        label = "<br/>".join([f"{n.name} ({n.platform if n.role == 'gateway' else n.role})"] +
                             [f"{i.name} {i.address}" for i in n.interfaces if i.address and i.role != "tunnel"])
        nodes.append({
            "name": n.name, "id": ids[n.name], "role": n.role, "site": n.site, "platform": n.platform, "label": label,
            "clab": {"kind": n.clab.kind, "image": n.clab.image, "cmd": n.clab.cmd,
                     "binds": list(n.clab.binds), "exec": list(n.clab.exec)},
            "interfaces": ifaces, "routes": [r.text() for r in n.routes],
        })
    links = []
    for link in plan.links:
        an, ai = link.a.split(":")
        bn, bi = link.b.split(":")
        seg = "underlay" if link.segment == "underlay" else "LAN"
        links.append({"a": link.a, "b": link.b, "a_node": an, "a_if": ai, "b_node": bn, "b_if": bi,
                      "a_id": ids[an], "b_id": ids[bn],
                      "mtu": link.mtu, "mtu_is_default": link.mtu_is_default,
                      "label": f"{ai} - {bi} ({seg}, MTU {link.mtu})"})
    tunnels = []
    for t in plan.tunnels:
        a, b = t.ends
        tunnels.append({"name": t.name, "type": t.type, "ip_proto": t.ip_proto, "overhead": t.overhead,
                        "mtu": t.mtu, "a": a.node, "b": b.node, "a_id": ids[a.node], "b_id": ids[b.node],
                        "label": f"{a.ifname} {t.type} {a.address.ip} - {b.address.ip} {b.ifname}",
                        "ends": [{"node": e.node, "ifname": e.ifname, "address": str(e.address),
                                  "local": str(e.local), "remote": str(e.remote)} for e in t.ends]})
    gateways = []
    for g in plan.gateways:
        plat = platforms.load(g.platform)
        lan = next(i for i in g.interfaces if i.role == "lan")
        underlay = next((i for i in g.interfaces if i.role == "underlay"), None)
        servers = [s for s in plan.servers if s.site == g.site]
        gateways.append({
            "name": g.name, "site": g.site, "platform": g.platform,
            "lan_address": str(lan.address),
            "underlay_address": str(underlay.address.ip) if underlay and underlay.address else "-",
            "tunnel_types": "/".join(sorted({t.type for t in plan.tunnels if any(e.node == g.name for e in t.ends)})) or "tunnel",
            "ethernets": [{"name": i.name, "address": str(i.address), "mtu": i.mtu,
                           "mtu_in_config": bool(plat.get("ethernet_mtu_in_config")) or i.mtu != CLAB_DEFAULT_MTU}
                          for i in g.ethernets],
            "tunnels": [_tunnel_view(plan, e, g.tunnel_mtu_in_config) for e in g.tunnels],
            "static_routes": [{"prefix": str(r.prefix), "next_hop": str(r.next_hop), "dev": r.dev}
                              for r in g.static_routes],
            "servers": [{"name": s.name, "netns": f"{plan.name}-{s.name}", "host_if": f"br-int{k}",
                         "address": str(s.interfaces[0].address), "gateway": str(s.gateway)}
                        for k, s in enumerate(servers)],
        })
    return {
        "name": plan.name, "nodes": nodes, "links": links, "tunnels": tunnels, "gateways": gateways,
        "pings": [{"src": p.src, "dst": p.dst, "address": str(p.address), "ttl": p.ttl} for p in plan.pings],
        "walks": [{"src": w.src, "dst": w.dst, "src_address": str(w.src_address), "dst_address": str(w.dst_address),
                   "hops": [_hop_text(h) for h in w.hops]} for w in plan.walks],
        "captures": [c.__dict__ for c in plan.captures],
    }


def _tunnel_view(plan: Plan, e: Any, mtu_in_config: bool) -> dict[str, Any]:
    t = next(t for t in plan.tunnels if e in t.ends)
    ttype = TUNNEL_TYPES[t.type]
    return {"ifname": e.ifname, "type": t.type, "mode": ttype.linux_mode, "encapsulation": ttype.vyos_encapsulation,
            "address": str(e.address), "local": str(e.local), "remote": str(e.remote), "mtu": t.mtu,
            "mtu_in_config": mtu_in_config or t.mtu_explicit, "peer_node": e.peer_node}


def render(plan: Plan, source: str) -> list[RenderedFile]:
    """Every generated file of the lab, in a stable order; same plan, same bytes."""
    ctx = view(plan, source)
    files: list[RenderedFile] = []
    folders = list(platforms.LAB_OUTPUTS) + sorted({g.platform for g in plan.gateways})
    for folder in folders:
        plat = platforms.load(folder)
        env = _env(plat.folders)
        for out in plat.outputs:
            template = env.get_template(out.template)
            if out.each == "lab":
                text = template.render(lab=ctx, source=source)
                files.append(RenderedFile(out.path.format(lab=plan.name), text.encode(), _mode(out)))
                continue
            for gw in ctx["gateways"]:
                if plat.role == "gateway" and gw["platform"] != folder:
                    continue
                text = template.render(lab=ctx, gw=gw, source=source)
                path = out.path.format(lab=plan.name, node=gw["name"])
                files.append(RenderedFile(path, text.encode(), _mode(out)))
                if out.set_listing:
                    tree = vyos_config.parse_boot(text, path)
                    listing = "\n".join(vyos_config.set_commands(tree)) + "\n"
                    files.append(RenderedFile(out.set_listing.format(lab=plan.name, node=gw["name"]),
                                              listing.encode()))
    files.append(RenderedFile("expected.json", expected_json(plan, source).encode()))
    files.sort(key=lambda f: f.path)
    return files


def _mode(out: platforms.Output) -> int:
    return 0o755 if out.executable else 0o644


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.get("files", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _manifest_bytes(files: list[RenderedFile]) -> bytes:
    body = {"generator": "clabgen", "files": {f.path: _sha(f.data) for f in files}}
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def check(files: list[RenderedFile], out: Path) -> list[str]:
    """Files that differ from what is on disk (for CI on checked-in labs)."""
    diffs = []
    for f in files:
        target = out / f.path
        if not target.is_file():
            diffs.append(f"{f.path}: missing")
        elif target.read_bytes() != f.data:
            diffs.append(f"{f.path}: differs from a fresh render")
    wanted = {f.path for f in files}
    for stale in sorted(set(_read_manifest(out)) - wanted):
        if (out / stale).exists():
            diffs.append(f"{stale}: generated earlier, no longer part of the lab")
    return diffs


def _current(target: Path) -> bytes | None:
    """What a target holds now: None if absent, b"" if it is not a regular file."""
    if not target.exists():
        return None
    return target.read_bytes() if target.is_file() else b""


def write(files: list[RenderedFile], out: Path, *, force: bool = False) -> list[str]:
    """Write into a temporary directory first, then move each file into place.

    A file that exists but was not written by clabgen (not in the manifest), or a generated file
    edited by hand since, is never overwritten unless `force`; files clabgen did not generate are
    never deleted.
    """
    out.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(out)
    on_disk = {f.path: _current(out / f.path) for f in files}
    blocked = []
    for f in files:
        target = out / f.path
        current = on_disk[f.path]
        if current is None or current == f.data:
            continue
        if f.path not in old:
            blocked.append(Problem(Where(str(target)), "exists and was not generated by clabgen; not overwriting",
                                   "move it away or pass --force"))
        elif old[f.path] != _sha(current):
            blocked.append(Problem(Where(str(target)), "was edited by hand since the last render; not overwriting",
                                   "edit the intent instead, or pass --force"))
    if blocked and not force:
        raise ClabgenError(*blocked)
    tmp = Path(tempfile.mkdtemp(prefix=".clabgen-render-", dir=out))
    try:
        for f in files + [RenderedFile(MANIFEST, _manifest_bytes(files))]:
            p = tmp / f.path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f.data)
            os.chmod(p, f.mode)
        changed = []
        for f in files + [RenderedFile(MANIFEST, b"")]:
            target = out / f.path
            if f.path != MANIFEST and on_disk[f.path] == f.data and (target.stat().st_mode & 0o777) == f.mode:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f.path, target)
            if f.path != MANIFEST:
                changed.append(f.path)
        wanted = {f.path for f in files}
        for stale in sorted(set(old) - wanted):
            target = out / stale
            if target.is_file() and _sha(target.read_bytes()) == old[stale]:
                target.unlink()
                changed.append(f"{stale} (removed)")
        return changed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
