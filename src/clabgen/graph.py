"""The lab as a picture: Graphviz (dot) source and Mermaid from the plan, pictures drawn by `dot`.

One model feeds every form, so `clabgen graph` (png, svg, dot) and the lab's rendered
`topology.svg` show the same drawing, and the Mermaid form is the lab README's own diagram.
The dot source is a pure function of the plan (same intent, same bytes); only the drawing needs
Graphviz, see `lab_svg` for how a lab renders where Graphviz is missing or another version.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ClabgenError, Problem
from .planned import Node, Plan, Tunnel

SVG_FILE = "topology.svg"
FORMATS = ("png", "svg", "dot", "mermaid")
STAMP = "clabgen-topology dot-sha256="
# One colour per tunnel type (a type not listed gets the last one); underlay and LANs stay grey.
TUNNEL_COLOURS = {"ipip": "#1f6fb4", "gre": "#c0392b"}
OTHER_COLOUR = "#7b3fa0"
FONT = "DejaVu Sans"


@dataclass(frozen=True)
class Drawn:
    """A tunnel as the picture labels it."""

    name: str
    a: str
    b: str
    type: str
    label: str


def _q(text: str) -> str:
    """A dot string literal (names are already [a-z0-9-], labels may hold anything)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _addr_lines(n: Node) -> list[str]:
    return [f"{i.name} {i.address}" for i in n.interfaces if i.address is not None and i.role in ("lan", "underlay")]


def _routing_of(plan: Plan, t: Tunnel) -> str:
    """The tunnel's routing as the plan sets it: OSPF cost per end, or the BGP session over it."""
    if plan.routing == "ospf":
        costs = []
        for e in t.ends:
            node = plan.node(e.node)
            oi = next((i for i in node.ospf.interfaces if i.ifname == e.ifname), None) if node.ospf else None
            if oi is not None:
                costs.append((oi.cost, oi.area))
        if costs:
            (c0, area), (c1, _) = costs[0], costs[-1]
            cost = f"cost {c0}" if c0 == c1 else f"cost {c0}/{c1}"
            return f"OSPF {cost}, area {area}"
        return "OSPF"
    if plan.routing == "bgp":
        a, b = (plan.node(e.node).bgp for e in t.ends)
        if a is None or b is None:
            return "BGP"
        return f"iBGP AS{a.asn}" if a.asn == b.asn else f"eBGP AS{a.asn} - AS{b.asn}"
    return ""


def tunnels(plan: Plan) -> list[Drawn]:
    out = []
    for t in plan.tunnels:
        a, b = t.ends
        lines = [f"{t.name}: {t.type}",
                 "policy-based (no interface)" if t.policy else f"{a.ifname} {a.address.ip} - {b.address.ip} {b.ifname}",
                 f"MTU {t.mtu}"]
        routing = _routing_of(plan, t)
        if routing:
            lines.append(routing)
        out.append(Drawn(t.name, a.node, b.node, t.type, "\n".join(lines)))
    return out


def _node_label(n: Node, lan: str = "") -> str:
    if n.role == "gateway":
        lines = [f"{n.name} ({n.platform})", f"site {n.site}, LAN {lan}", *_addr_lines(n)]
        if n.loopback is not None:
            lines.append(f"lo {n.loopback.ip}" + (f", AS {n.bgp.asn}" if n.bgp else ""))
        return "\n".join(lines)
    if n.role == "server":
        return "\n".join([n.name, *_addr_lines(n)])
    return n.name


def dot(plan: Plan) -> str:
    """The Graphviz source: sites as clusters (gateway, servers, LAN switch), the underlay, and each
    tunnel as a dashed overlay edge through its label. Deterministic: plan order, no timestamps."""
    seg_of_switch = {n.name: next((link.segment for link in plan.links if link.b.startswith(f"{n.name}:")), "")
                     for n in plan.nodes if n.role == "switch"}
    under_switch = next((name for name, seg in seg_of_switch.items() if seg == "underlay"), None)
    out = [f"graph {_q(plan.name)} {{",
           f"  graph [fontname={_q(FONT)}, label={_q(_title(plan))}, labelloc=t, fontsize=16, "
           "rankdir=TB, nodesep=0.35, ranksep=0.55, newrank=true, bgcolor=white, pad=0.3];",
           f"  node [fontname={_q(FONT)}, fontsize=10, shape=box, style=\"rounded,filled\", "
           "fillcolor=\"#f4f6f8\", color=\"#555555\"];",
           f"  edge [fontname={_q(FONT)}, fontsize=9, color=\"#888888\"];"]
    drawn = tunnels(plan)
    level = levels(plan)
    for d in drawn:
        colour = TUNNEL_COLOURS.get(d.type, OTHER_COLOUR)
        out.append(f"  {_q('tunnel:' + d.name)} [label={_q(d.label)}, shape=box, style=\"rounded,dashed,filled\", "
                   f"fillcolor=\"#ffffff\", color={_q(colour)}, fontcolor={_q(colour)}, fontsize=9];")
    for s in plan.sites:
        members = [n for n in plan.nodes if n.site == s.name]
        switch = f"sw-{s.name}" if f"sw-{s.name}" in seg_of_switch else None
        out.append(f"  subgraph {_q('cluster_' + s.name)} {{")
        out.append("    label=\"\"; style=\"rounded\"; color=\"#999999\";")
        for n in members:
            fill = "#e3eefa" if n.role == "gateway" else "#f4f6f8"
            out.append(f"    {_q(n.name)} [label={_q(_node_label(n, str(s.lan)))}, fillcolor={_q(fill)}];")
        if switch:
            out.append(f"    {_q(switch)} [label={_q(f'{switch} (LAN bridge)')}, shape=box, style=\"filled\", "
                       "fillcolor=\"#eeeeee\", fontsize=9];")
        out.append("    { rank=same; " + " ".join(_q(n.name) for n in members) + (f" {_q(switch)}" if switch else "") + " }")
        out.append("  }")
    under = [link for link in plan.links if link.segment == "underlay"]
    if under_switch:
        label = f"underlay {plan.underlay}\n{under_switch} (bridge), MTU {under[0].mtu}"
    elif under:        # two gateways: one veth; drawn through a label box like the bridge
        under_switch = "underlay"
        label = f"underlay {plan.underlay}\none veth {under[0].a} - {under[0].b}, MTU {under[0].mtu}"
    if under_switch:
        out.append(f"  {_q(under_switch)} [label={_q(label)}, shape=box, style=\"filled\", fillcolor=\"#eeeeee\"];")
        out.append(f"  {{ rank=max; {_q(under_switch)} }}")
    for d in drawn:
        colour = TUNNEL_COLOURS.get(d.type, OTHER_COLOUR)
        mid = _q("tunnel:" + d.name)
        style = f"style=dashed, penwidth=2, color={_q(colour)}"
        if level[d.a] == level[d.b]:       # a tunnel within one level arches above it
            out.append(f"  {mid} -- {_q(d.a)} [{style}];")
            out.append(f"  {mid} -- {_q(d.b)} [{style}];")
        else:                              # from the hub side down to the spoke side
            upper, lower = (d.a, d.b) if level[d.a] < level[d.b] else (d.b, d.a)
            out.append(f"  {_q(upper)} -- {mid} [{style}];")
            out.append(f"  {mid} -- {_q(lower)} [{style}];")
    for link in plan.links:
        an, ai = link.a.split(":")
        bn, bi = link.b.split(":")
        mtu = "" if link.mtu_is_default else f", MTU {link.mtu}"
        if link.segment == "underlay" and bn.startswith("sw-"):
            out.append(f"  {_q(an)} -- {_q(bn)} [label={_q(ai)}, penwidth=1.5, color=\"#555555\"];")
        elif link.segment == "underlay":
            for end, ifname in ((an, ai), (bn, bi)):
                out.append(f"  {_q(end)} -- {_q(under_switch or 'underlay')} [label={_q(ifname)}, penwidth=1.5, "
                           "color=\"#555555\"];")
        else:
            extra = f", label={_q(mtu[2:])}" if mtu else ""
            out.append(f"  {_q(an)} -- {_q(bn)} [taillabel={_q(ai)}, headlabel={_q(bi)}, labelfontsize=8, "
                       f"labelfontcolor=\"#666666\"{extra}];")
    out.append("}")
    return "\n".join(out) + "\n"


def levels(plan: Plan) -> dict[str, int]:
    """Rows of gateways: the best-connected ones (hubs) on top, the others by their tunnel distance
    from them, so hub-and-spoke and chains read top-down; a full mesh stays one row."""
    peers: dict[str, set[str]] = {g.name: set() for g in plan.gateways}
    for t in plan.tunnels:
        a, b = (e.node for e in t.ends)
        peers[a].add(b)
        peers[b].add(a)
    most = max((len(p) for p in peers.values()), default=0)
    level = {g: 0 for g, p in peers.items() if len(p) == most}
    frontier = list(level)
    while frontier:
        nxt = []
        for g in frontier:
            for p in sorted(peers[g]):
                if p not in level:
                    level[p] = level[g] + 1
                    nxt.append(p)
        frontier = nxt
    return {g: level.get(g, 0) for g in peers}


def _title(plan: Plan) -> str:
    sites = f"{len(plan.sites)} site{'s' if len(plan.sites) != 1 else ''}"
    tunnels = f"{len(plan.tunnels)} tunnel{'s' if len(plan.tunnels) != 1 else ''}"
    return f"lab {plan.name}: {sites}, {tunnels}, routing {plan.routing}"


def mermaid(plan: Plan) -> str:
    """The lab README's Mermaid diagram: the README includes this very template."""
    from . import platforms, view
    env = platforms.load("docs").environment()
    return env.get_template("mermaid.j2").render(lab=view.lab_view(plan))


def plan_of(arg: Path) -> Plan:
    """The plan of LAB (an intent, or a rendered lab whose expected.json names its intent beside it):
    the picture is drawn at render time, from the plan, like the README."""
    from . import intent, plan
    from .contract import FILE, LabContract
    if arg.is_dir():
        contract = LabContract.load(arg / FILE)
        path = arg / contract.source
        if not path.is_file():
            raise ClabgenError(Problem(None, f"{arg}: its intent {contract.source} is not in the lab directory",
                                       "pass the intent file instead"))
        arg = path
    elif not arg.exists():
        raise ClabgenError(Problem(None, f"{arg}: no such lab directory or intent file"))
    return plan.build(intent.read_lab(arg, str(arg)))


def have_graphviz() -> bool:
    return shutil.which("dot") is not None


def draw(source: str, fmt: str) -> bytes:
    """`dot -T<fmt>` of the source (argv, no shell); a clear error when Graphviz is missing."""
    return start_draw(source, fmt)()


def start_draw(source: str, fmt: str) -> Callable[[], bytes]:
    """draw() begun: `dot` runs from now on, the returned call waits for its output. The source goes
    in through an unlinked file, not a pipe, so this process writes nothing while dot runs (and
    starts no thread: render forks afterwards)."""
    exe = shutil.which("dot")
    if exe is None:
        raise ClabgenError(Problem(None, f"drawing {fmt} needs Graphviz's `dot`, which is not installed",
                                   "apt-get install --no-install-recommends graphviz; or use --format dot|mermaid"))
    with tempfile.TemporaryFile() as given:
        given.write(source.encode())
        given.seek(0)
        proc = subprocess.Popen([exe, f"-T{fmt}"], stdin=given, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result() -> bytes:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode != 0:
            raise ClabgenError(f"dot -T{fmt} failed: {err.decode(errors='replace').strip()}")
        return out
    return result


def stamp(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


_GENERATOR = re.compile(rb"<!-- Generated by graphviz version [^>]*-->\n")


def svg(source: str) -> bytes:
    """The drawing as an SVG file that names the dot source it was drawn from (not the Graphviz
    version, so the same source on the same Graphviz gives the same bytes)."""
    return _stamped(source, draw(source, "svg"))


def _stamped(source: str, drawn: bytes) -> bytes:
    body = _GENERATOR.sub(b"", drawn)
    head, sep, rest = body.partition(b"<svg")
    return head + f"<!-- {STAMP}{stamp(source)} -->\n".encode() + sep + rest


def placeholder(plan: Plan, source: str) -> bytes:
    """What render writes when the drawing is out of date and Graphviz is missing: a small valid
    SVG saying so (render --check on a machine with Graphviz then reports the file as stale)."""
    lines = [f"lab {plan.name}: the topology picture was not drawn",
             "Graphviz (dot) was not installed when this lab was rendered.",
             "Install it (apt-get install graphviz) and run clabgen render again;",
             "the README's Mermaid diagram shows the same topology."]
    text = "".join(f'<text x="16" y="{28 + 22 * i}">{_xml(line)}</text>' for i, line in enumerate(lines))
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- {STAMP}{stamp(source)} placeholder -->\n"
            f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{28 + 22 * len(lines)}\" "
            f"font-family=\"sans-serif\" font-size=\"14\">{text}</svg>\n").encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def drawn_from(data: bytes) -> tuple[str, bool] | None:
    """(dot source hash, is a placeholder) an SVG of ours was drawn from; None for any other file."""
    m = re.search(rb"<!-- " + re.escape(STAMP.encode()) + rb"([0-9a-f]{64})( placeholder)? -->", data[:4096])
    return (m.group(1).decode(), bool(m.group(2))) if m else None


def lab_svg(plan: Plan, previous: bytes | None) -> bytes:
    """topology.svg for render. Graphviz's output differs between its versions and fonts, so the
    picture already in the lab is kept as long as it was drawn from the same dot source (the same
    intent gives the same bytes on every machine, with or without Graphviz); a changed lab is
    drawn again, or, without Graphviz, gets a placeholder saying how to draw it."""
    return start_lab_svg(plan, previous)()


def start_lab_svg(plan: Plan, previous: bytes | None) -> Callable[[], bytes]:
    """lab_svg() begun: Graphviz lays the lab out in its own process from now on (a 200-site lab's
    layout takes as long as all its gateway configs); the returned call waits for the file."""
    source = dot(plan)
    if previous is not None and drawn_from(previous) == (stamp(source), False):
        return lambda: previous
    if not have_graphviz():
        data = placeholder(plan, source)
        return lambda: data
    drawn = start_draw(source, "svg")
    return lambda: _stamped(source, drawn())


def read_previous(out: Path) -> bytes | None:
    try:
        return (out / SVG_FILE).read_bytes()
    except OSError:
        return None
