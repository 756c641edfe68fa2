"""The `clabgen` command: parse options, call one function, print its result or the problems."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import click
import typer

from .errors import ClabgenError


class _Interrupted(Exception):
    """Ctrl-C inside a command: typer would turn it into a silent exit 130; main() says so."""


class _Group(typer.core.TyperGroup):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc


# No pretty exceptions: main() turns an unexpected exception into one line (a traceback with
# CLABGEN_DEBUG=1), never rich frames with local variables.
app = typer.Typer(add_completion=True, no_args_is_help=True, cls=_Group,
                  pretty_exceptions_enable=False, pretty_exceptions_show_locals=False,
                  help="Turn a tunnel-lab intent into a containerlab/VyOS/Linux lab; deploy, verify, destroy it.")


def _show_version(value: bool) -> None:
    if value:
        from . import __version__
        typer.echo(f"clabgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


# --- shell completion: cheap, only a directory listing or one small JSON file -------------------

def _listing(incomplete: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(completion text, entry) for each entry of the directory `incomplete` points into."""
    head, slash, prefix = incomplete.rpartition("/")
    shown = head + slash
    try:
        with os.scandir(os.path.expanduser(shown) or ".") as entries:
            for e in sorted(entries, key=lambda e: e.name):
                if e.name.startswith(prefix) and (prefix.startswith(".") or not e.name.startswith(".")):
                    yield shown + e.name, e
    except OSError:
        return


def _is_intent(entry: os.DirEntry[str]) -> bool:
    return entry.name.endswith((".yml", ".yaml")) and not entry.name.endswith(".clab.yml") and entry.is_file()


def _is_lab_dir(entry: os.DirEntry[str]) -> bool:
    try:
        if not entry.is_dir():
            return False
        with os.scandir(entry.path) as inside:
            return any(e.name == "expected.json" or e.name.endswith(".clab.yml") for e in inside)
    except OSError:
        return False


def _complete_intent(incomplete: str) -> list[str]:
    return [text for text, e in _listing(incomplete) if _is_intent(e)]


def _complete_lab(incomplete: str) -> list[str]:
    """Rendered lab directories (expected.json or a *.clab.yml inside) and intent files."""
    return [text for text, e in _listing(incomplete) if _is_lab_dir(e) or _is_intent(e)]


def _complete_node(ctx: typer.Context, incomplete: str) -> list[str]:
    """Node names from the lab's expected.json; nothing at all if it cannot be read."""
    import json
    lab = Path(os.path.expanduser(str(ctx.params.get("lab") or ".")))
    try:
        nodes = json.loads(((lab.parent if lab.is_file() else lab) / "expected.json").read_text())["nodes"]
        names = [n["name"] for n in nodes]   # the lab contract's node list
        return [n for n in names if isinstance(n, str) and n.startswith(incomplete)]
    except Exception:  # anything unexpected in the file: no suggestions, never a traceback in the shell
        return []


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@app.command()
def validate(intent: Path = typer.Argument(..., help="intent YAML file", autocompletion=_complete_intent)) -> None:
    """Check an intent file; print every problem as FILE:LINE:COL: field: message."""
    from . import intent as intent_mod
    from . import plan as plan_mod
    from .collector import few_collections, no_closing_collection
    with few_collections():
        lab = intent_mod.read_lab(intent, _display(intent))
        p = plan_mod.build(lab, scenarios=False)     # fault predictions warn about nothing; render makes them
    for w in p.warnings:
        _say(f"warning: {w}", err=True)
    typer.echo(f"{_display(intent)}: ok ({len(p.nodes)} nodes, {len(p.links)} links, {len(p.tunnels)} tunnels)")
    no_closing_collection()


@app.command()
def render(
    intent: Path = typer.Argument(..., help="intent YAML file", autocompletion=_complete_intent),
    out: Path | None = typer.Option(None, "--out", help="output directory (default: next to the intent)"),
    check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if files differ from a fresh render"),
    force: bool = typer.Option(False, "--force", help="overwrite files clabgen did not generate or that were edited"),
) -> None:
    """Render the lab: topology, gateway configs, Linux scripts, README and expected.json."""
    from . import termout
    from .collector import no_closing_collection
    from .pipeline import render_intent
    with termout.progress(f"rendering {_display(intent)}", threads=False):
        result = render_intent(intent, out, check=check, force=force, display=_display(intent))
    if check:
        if result.diffs:
            for d in result.diffs:
                typer.echo(f"{_display(result.out)}/{d}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{_display(result.out)}: up to date ({len(result.files)} files)")
        return
    typer.echo(f"{_display(result.out)}: {len(result.files)} files, {len(result.changed)} changed")
    _warn_placeholder(result.out, result.files)
    for c in result.changed:
        typer.echo(f"  {c}")
    no_closing_collection()


def _warn_placeholder(out: Path, files: Sequence[object]) -> None:
    """Say so when the topology picture could not be drawn (no Graphviz here)."""
    from . import graph as graph_mod
    from .render import RenderedFile
    svg = next((f for f in files if isinstance(f, RenderedFile) and f.path == graph_mod.SVG_FILE), None)
    drawn = graph_mod.drawn_from(svg.data) if svg else None
    if drawn is not None and drawn[1]:
        _say(f"warning: {_display(out)}/{graph_mod.SVG_FILE} is a placeholder: Graphviz (dot) is not installed "
             "(apt-get install --no-install-recommends graphviz, then render again)", err=True)


def _internal_error(exc: Exception) -> NoReturn:
    """A bug or an unforeseen host condition: one line (a plain traceback first with CLABGEN_DEBUG=1)."""
    lines = str(exc).splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    if os.environ.get("CLABGEN_DEBUG"):
        import traceback
        traceback.print_exception(exc)
    print(f"clabgen: internal error: {what} (set CLABGEN_DEBUG=1 for the traceback)", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    """Entry point: problems become `file:line:col: field: message` lines and exit 2, never a traceback."""
    try:
        # The click command itself, not app(): Typer.__call__ would install its excepthook.
        rc = typer.main.get_command(app).main(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except ClabgenError as exc:
        if os.environ.get("CLABGEN_DEBUG") and exc.__cause__ is not None:
            import traceback
            traceback.print_exception(exc.__cause__)
        from .termout import line
        for p in exc.problems:
            line(f"error: {p}" if p.where is None else str(p), err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, _Interrupted):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click's usage errors (typer may vendor click, so duck-type them)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        _internal_error(exc)


# --- run commands: imported lazily so `render` never loads runtime modules ---------------------

LAB_HELP = "rendered lab directory, or its intent file (rendered first)"


def _say(msg: str, err: bool = False) -> None:
    from .termout import line
    line(msg, err)


@app.command()
def deploy(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    runtime: str = typer.Option("auto", "--runtime", "-r",
                                help="auto (containerlab if installed and an engine answers, else docker if an "
                                     "engine answers, else netns) | containerlab | docker | netns"),
    tunnels: str = typer.Option("auto", "--tunnels", help="the emulated gateways' tunnels: auto (kernel, else BPF, "
                                                           "else userspace) | kernel | bpf | userspace"),
) -> None:
    """Deploy the lab; a failed or interrupted deploy rolls itself back."""
    from . import labops, termout
    options = {"tunnels": tunnels}
    _say(f"deploying {_display(lab)} on the {runtime} runtime", err=True)
    with termout.progress(f"deploying {_display(lab)}") as progress:
        report = labops.deploy(lab, runtime, progress, **options)
    for note in report.notes:
        _say(f"  {note}", err=True)
    if report.already_up:
        return
    _say(f"deployed {report.lab} ({report.runtime}) in {report.seconds:.2f}s")


@app.command()
def destroy(lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab)) -> None:
    """Remove everything the lab created (idempotent; also cleans a half-finished deploy)."""
    from . import labops, termout
    with termout.progress(f"destroying {_display(lab)}") as progress:
        removed = labops.destroy(lab, progress)
    typer.echo(f"destroyed ({len(removed)} items removed)" if removed else "nothing to destroy")


@app.command()
def verify(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    as_json: bool = typer.Option(False, "--json", help="print the checks as JSON"),
    junit: Path | None = typer.Option(None, "--junit", help="also write a JUnit XML report"),
    wait: float = typer.Option(60.0, "--wait", help="seconds to wait for dynamic routing to converge"),
) -> None:
    """Check routes, tunnels, pings and encapsulation against expected.json; exit 0 only if all pass."""
    import json
    from dataclasses import asdict

    from . import labops, termout
    from . import verify as verify_mod
    try:
        with termout.progress(f"verifying {_display(lab)}") as progress:
            rendered, checks, seconds = labops.verify(lab, progress, wait)
    except ClabgenError as exc:
        if as_json:   # a JSON reader gets JSON, saying why there are no checks
            typer.echo(json.dumps({"lab": str(lab), "ok": False, "error": str(exc.problems[0]),
                                   "problems": [str(p) for p in exc.problems], "checks": []}, indent=2))
        raise
    failed = [c for c in checks if not c.ok]
    if junit:
        junit.write_bytes(verify_mod.junit(rendered, checks))
    if as_json:
        typer.echo(json.dumps({"lab": rendered.name, "ok": not failed, "seconds": round(seconds, 3),
                               "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        rows = [[c.group, c.node, c.name, "pass" if c.ok else "FAIL", c.detail] for c in checks]
        termout.table(f"verify {rendered.name}", [termout.Col("check"), termout.Col("node"), termout.Col("what"),
                                                  termout.Col("result"), termout.Col("detail", whole=False)],
                      rows, styles=[None if c.ok else "red" for c in checks])
        _say(f"{len(checks) - len(failed)}/{len(checks)} checks passed in {seconds:.2f}s")
    if failed:
        raise typer.Exit(1)


@app.command()
def inspect(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show the lab's nodes and their state on the runtime that deployed it."""
    import json

    from . import labops
    info = labops.inspect(lab)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    _say(f"lab {info['lab']}: {'deployed on ' + str(info.get('runtime')) if info.get('deployed') else 'not deployed'}")
    dp = info.get("dataplane")
    if dp and (dp.get("pid") or dp.get("state") != "not running"):
        how = f"pid {dp['pid']}, {dp.get('tunnel_ends', 0)} tunnel ends, {dp.get('impl') or '?'}" if dp.get("pid") else ""
        _say(f"  userspace tunnel dataplane: {dp['state']}" + (f" ({how})" if how else ""))
    if (info.get("bpf") or {}).get("tunnel_ends"):
        _say(f"  BPF tunnels: {info['bpf']['tunnel_ends']} tunnel ends (tc programs in the gateways, no process)")
    for name, node in info.get("nodes", {}).items():
        ifs = ", ".join(f"{i['name']}({i.get('kind') or 'dev'},{i['mtu']})" for i in node.get("interfaces", []))
        _say(f"  {name:12} {node.get('state', '?'):8} {node.get('netns') or node.get('container', '')}  {ifs}")


@app.command()
def fault(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    action: str = typer.Argument(..., help="down | up"),
    target: str = typer.Argument(..., help="a tunnel name, or GATEWAY:underlay"),
) -> None:
    """Take a tunnel or a gateway's underlay link down (or up) on the running lab; verify then
    checks the prediction for that fault (see the lab README, section "When something fails")."""
    from . import labops, termout
    if action not in ("down", "up"):
        raise ClabgenError(f"unknown action {action!r}; valid: down, up")
    with termout.progress(f"fault {action} {target}") as progress:
        active = labops.fault(lab, action, target, progress)
    typer.echo(f"faults now: {', '.join(active) if active else 'none'}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    node: str = typer.Argument(..., help="node name", autocompletion=_complete_node),
    cmd: list[str] = typer.Argument(..., help="command and arguments (after --)"),
) -> None:
    """Run a command inside a node, e.g. clabgen exec labs/ipip gw1 -- ip route."""
    from . import labdir, labops
    rendered = labdir.resolve(lab)
    handles = labops.runtime_for(rendered).nodes(rendered)
    if node not in handles:
        raise ClabgenError(f"no node {node!r} in lab {rendered.name} (nodes: {', '.join(handles)})")
    result = handles[node].exec(cmd, timeout=120)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise typer.Exit(result.returncode)


# --- render-side views: the picture and starter intents ----------------------------------------

@app.command()
def graph(
    lab: Path = typer.Argument(..., help="intent file, or a rendered lab directory with its intent", autocompletion=_complete_lab),
    fmt: str | None = typer.Option(None, "--format", "-f", help="png | svg | dot | mermaid (default: from -o's suffix, else svg)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write to FILE (default: stdout)"),
) -> None:
    """Draw the lab: sites, gateways, servers, the underlay, and the tunnels labelled with type,
    addresses, MTU and routing (png/svg need Graphviz; mermaid is the lab README's diagram)."""
    from . import graph as graph_mod
    chosen = fmt or (output.suffix.lstrip(".") if output is not None and output.suffix else "svg")
    if chosen not in graph_mod.FORMATS:
        raise ClabgenError(f"unknown format {chosen!r}; valid: {', '.join(graph_mod.FORMATS)}")
    if chosen == "png" and output is None and sys.stdout.isatty():
        raise ClabgenError("a PNG is binary; write it to a file with -o FILE.png (or pipe it)")
    plan = graph_mod.plan_of(lab)
    if chosen == "mermaid":
        data = graph_mod.mermaid(plan).encode()
    elif chosen == "dot":
        data = graph_mod.dot(plan).encode()
    elif chosen == "svg":
        data = graph_mod.svg(graph_mod.dot(plan))
    else:
        data = graph_mod.draw(graph_mod.dot(plan), chosen)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise ClabgenError(f"{output}: cannot write: {exc.strerror or exc}") from None
    _say(f"{_display(output)}: {chosen}, {len(data)} bytes", err=True)


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="where to write intent.yml (created if missing)"),
    pattern: str = typer.Option(..., "--pattern", "-p", help="two-site | hub-spoke | mesh | chain"),
    sites: int | None = typer.Option(None, "--sites", "-n", help="number of sites (two-site: 2; others: 3 by default)"),
    tunnel: str = typer.Option("ipip", "--tunnel", "-t", help="tunnel type: ipip | gre"),
    routing: str = typer.Option("static", "--routing", help="static | ospf | bgp"),
    platform: str = typer.Option("vyos-1.2", "--platform", help="gateway platform: vyos-1.2 | vyos-1.4 | vyos-1.5"),
    name: str | None = typer.Option(None, "--name", help="lab name (default: from the directory's name)"),
) -> None:
    """Write a commented starter intent of a common shape; it renders as is. Never overwrites one."""
    from . import starter
    text = starter.intent_text(name or starter.lab_name(directory), pattern, sites, tunnel, routing, platform)
    path = starter.write(directory, text)
    _say(f"{_display(path)}: {pattern} starter intent written; next: clabgen render {_display(path)}")


# --- looking inside a lab: trace, capture, shell, status ------------------------------------------

@app.command()
def trace(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    src: str = typer.Argument(..., help="the node the packet starts from", autocompletion=_complete_node),
    dst: str = typer.Argument(..., help="a node (its first address) or an IPv4 address", autocompletion=_complete_node),
    live: bool = typer.Option(False, "--live", help="also probe the running lab (ICMP echo, TTL 1, 2, ...) and "
                                                    "compare hop by hop; exit 1 where they differ"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """The path a packet takes, hop by hop, predicted from the lab contract's routes: interfaces, the
    route each node matches, where it is encapsulated and in which outer header, TTL and MTU."""
    import json
    from dataclasses import asdict

    from . import labops, termout
    with termout.progress(f"tracing {src} -> {dst}") as progress:
        report = labops.trace(lab, src, dst, live, progress)
    if as_json:
        typer.echo(json.dumps({"lab": report.lab, "src": report.src, "dst": report.dst, "dst_node": report.dst_node,
                               "faults": list(report.faults), "ok": report.ok,
                               "paths": [{"arrives": p.arrives, "routers": p.routers, "path_mtu": p.path_mtu,
                                          "stops": [asdict(s) for s in p.stops]} for p in report.paths],
                               "live": None if report.answers is None else {
                                   "answers": [asdict(a) for a in report.answers],
                                   "hops": [asdict(c) for c in report.compared or ()]}}, indent=2))
    else:
        _print_trace(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_trace(report: object) -> None:
    from . import termout
    from .labops import TraceReport
    assert isinstance(report, TraceReport)
    to = f"{report.dst_node} ({report.dst})" if report.dst_node else report.dst
    under = f"; with the fault {', '.join(report.faults)}" if report.faults else ""
    cols = [termout.Col("hop"), termout.Col("node"), termout.Col("in"), termout.Col("ttl"),
            termout.Col("route", whole=False, ratio=2), termout.Col("out"), termout.Col("mtu"),
            termout.Col("encapsulation", whole=False, ratio=3)]
    for k, p in enumerate(report.paths, start=1):
        which = f" (path {k} of {len(report.paths)}, equal-cost)" if len(report.paths) > 1 else ""
        routers = f"{p.routers} router{'s' if p.routers != 1 else ''}"
        end = (f"arrives with TTL {p.stops[-1].ttl} after {routers}, path MTU {p.path_mtu}" if p.arrives
               else f"does not arrive: {p.stops[-1].node}: {p.stops[-1].note or 'no next hop'}")
        _say(f"predicted {report.src} -> {to}{which}{under}: {end}")
        rows = [[str(s.hop), s.node, s.in_if or "-", str(s.ttl), s.route or s.note or "-", s.out_if or "-",
                 str(s.mtu) if s.mtu is not None else "-", s.encap or ""] for s in p.stops]
        termout.table("", cols, rows)
    if report.compared is None:
        return
    rows = []
    for c in report.compared:
        a = c.answer
        measured = "-" if a is None else (f"{a.node or '?'} {a.address}" if a.address else "no answer")
        rows.append([str(c.hop), " or ".join(c.predicted) or "-", measured, a.detail if a else "-",
                     "ok" if c.ok else "DIFFERS"])
    _say(f"live: {report.src} -> {to}, ICMP echo with TTL 1, 2, ...")
    termout.table("", [termout.Col("hop"), termout.Col("predicted", whole=False), termout.Col("measured"),
                       termout.Col("answer", whole=False), termout.Col("result")], rows,
                  styles=[None if c.ok else "red" for c in report.compared])
    bad = next((c for c in report.compared if not c.ok), None)
    if bad is None and report.compared:
        _say(f"the live path matches the prediction hop for hop ({len(report.compared)} hops)")
    elif bad is not None:
        _say(f"hop {bad.hop} differs: {bad.why}")


@app.command()
def capture(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    node: str = typer.Argument(..., help="node name", autocompletion=_complete_node),
    iface: str = typer.Argument(..., help="interface, e.g. eth2 (underlay: outer headers) or tun0 (inner only)"),
    write: Path | None = typer.Option(None, "--write", "-w", help="write pcapng to FILE (`-` for stdout, e.g. "
                                                                  "| wireshark -k -i -)"),
    count: int | None = typer.Option(None, "--count", "-c", help="stop after COUNT packets"),
    seconds: float | None = typer.Option(None, "--seconds", help="stop after S seconds"),
    bpf: str | None = typer.Option(None, "--filter", "-f", help="tcpdump filter expression, e.g. 'ip proto 4'"),
    decode: bool = typer.Option(False, "--decode", "-d", help="print one line per packet (outer and inner "
                                                             "headers; the default without -w)"),
) -> None:
    """Capture packets on a node's interface of the running lab (any runtime): a pcapng file for
    Wireshark/tshark, or a live decode. Ctrl-C stops it and keeps what was captured."""
    from . import labops, termout
    if count is not None and count < 1:
        raise ClabgenError(f"--count {count}: give 1 or more")
    if seconds is not None and seconds <= 0:
        raise ClabgenError(f"--seconds {seconds:g}: give a positive number")
    to_stdout = write is not None and str(write) == "-"
    if to_stdout and decode:
        raise ClabgenError("-w - and --decode both want stdout; write the pcapng to a file instead")
    if to_stdout and sys.stdout.isatty():
        raise ClabgenError("-w - writes binary pcapng; pipe it (| wireshark -k -i -, | tshark -r -) or give a file")
    decode = decode or write is None
    out = None
    try:
        if to_stdout:
            out = sys.stdout.buffer
        elif write is not None:
            out = write.open("wb")
    except OSError as exc:
        raise ClabgenError(f"{write}: cannot write: {exc.strerror or exc}") from None
    try:
        with termout.progress(f"capturing {node}:{iface}") as progress:
            stats = labops.capture(lab, node, iface, out, decode=decode, count=count, seconds=seconds,
                                   expression=bpf, progress=progress,
                                   show=(lambda text: _say(text)) if termout.is_tty() else None)
    finally:
        if out is not None and not to_stdout:
            out.close()
    why = {"interrupted": ", stopped by Ctrl-C", "seconds": f" in {seconds or 0:g}s", "decoder": ", the decoder ended"}
    saved = f" to {_display(write)}" if write is not None and not to_stdout else ""
    _say(f"{stats.packets} packets ({stats.bytes} bytes) captured{saved}{why.get(stats.stopped_by, '')}", err=True)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every lab deployed on this machine (any runtime): directory, nodes up, dataplane and daemon
    health, age; and what no record claims (orphans), with the command that cleans each."""
    import json
    from dataclasses import asdict

    from . import status as status_mod
    from . import termout
    found = status_mod.collect()
    if as_json:
        typer.echo(json.dumps({"labs": [asdict(x) for x in found.labs], "orphans": [asdict(o) for o in found.orphans],
                               "notes": found.notes}, indent=2))
        return
    for note in found.notes:
        _say(f"note: {note}", err=True)
    if not found.labs:
        _say("no labs deployed")
    else:
        rows = [[x.lab, x.runtime, x.state, f"{x.nodes_up}/{x.nodes}", x.age, "; ".join(x.health) or "-",
                 _display(Path(x.lab_dir)) + ("" if x.lab_dir_exists else " (gone)")] for x in found.labs]
        termout.table("labs", [termout.Col("lab"), termout.Col("runtime"), termout.Col("state"), termout.Col("nodes"),
                               termout.Col("age"), termout.Col("health", whole=False), termout.Col("directory", whole=False)],
                      rows, styles=[None if x.state == "up" else "yellow" for x in found.labs])
        for x in found.labs:
            if x.down:
                _say(f"{x.lab}: not running: {', '.join(x.down)}")
            if x.state != "up" or not x.lab_dir_exists:
                for c in x.clean:
                    _say(f"{x.lab}: clean up with: {c}")
    if found.orphans:
        _say(f"{len(found.orphans)} orphan{'s' if len(found.orphans) > 1 else ''} (no clabgen record claims them):")
        for o in found.orphans:
            who = f"lab {o.lab}" if o.lab else (f"probably lab {o.guess}" if o.guess else "lab unknown")
            _say(f"  {o.kind} {', '.join(o.names)} ({who}; {o.detail})")
            for c in o.clean:
                _say(f"    clean: {c}")


@app.command()
def shell(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    node: str = typer.Argument(..., help="node name", autocompletion=_complete_node),
) -> None:
    """An interactive shell in a node (its namespace, or its container); `exec` runs one command."""
    from . import labops
    argv = labops.shell_argv(lab, node, interactive=sys.stdin.isatty())
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)   # the shell takes over this process: its exit status is ours
    except OSError as exc:
        raise ClabgenError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
