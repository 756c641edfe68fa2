"""The `clabgen` command: parse options, call one function, print its result or the problems."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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
    lab = intent_mod.read_lab(intent, _display(intent))
    p = plan_mod.build(lab)
    for w in p.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"{_display(intent)}: ok ({len(p.nodes)} nodes, {len(p.links)} links, {len(p.tunnels)} tunnels)")


@app.command()
def render(
    intent: Path = typer.Argument(..., help="intent YAML file", autocompletion=_complete_intent),
    out: Path | None = typer.Option(None, "--out", help="output directory (default: next to the intent)"),
    check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if files differ from a fresh render"),
    force: bool = typer.Option(False, "--force", help="overwrite files clabgen did not generate or that were edited"),
) -> None:
    """Render the lab: topology, gateway configs, Linux scripts, README and expected.json."""
    from .pipeline import render_intent
    result = render_intent(intent, out, check=check, force=force, display=_display(intent))
    if check:
        if result.diffs:
            for d in result.diffs:
                typer.echo(f"{_display(result.out)}/{d}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{_display(result.out)}: up to date ({len(result.files)} files)")
        return
    typer.echo(f"{_display(result.out)}: {len(result.files)} files, {len(result.changed)} changed")
    for c in result.changed:
        typer.echo(f"  {c}")


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
        for p in exc.problems:
            print(f"error: {p}" if p.where is None else str(p), file=sys.stderr)
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


def _progress(msg: str) -> None:
    typer.echo(f"  {msg}", err=True)


@app.command()
def deploy(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    runtime: str = typer.Option("auto", "--runtime", "-r",
                                help="auto (containerlab if installed and an engine answers, else docker if an "
                                     "engine answers, else netns) | containerlab | docker | netns"),
    tunnels: str = typer.Option("auto", "--tunnels", help="auto | kernel | userspace (netns runtime)"),
) -> None:
    """Deploy the lab; a failed or interrupted deploy rolls itself back."""
    from . import labops
    options = {"tunnels": tunnels} if runtime in ("netns", "auto") else {}
    typer.echo(f"deploying {_display(lab)} on the {runtime} runtime", err=True)
    report = labops.deploy(lab, runtime, _progress, **options)
    for note in report.notes:
        typer.echo(f"  {note}", err=True)
    if report.already_up:
        return
    typer.echo(f"deployed {report.lab} ({report.runtime}) in {report.seconds:.2f}s")


@app.command()
def destroy(lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab)) -> None:
    """Remove everything the lab created (idempotent; also cleans a half-finished deploy)."""
    from . import labops
    removed = labops.destroy(lab, _progress)
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

    from . import labops
    from . import verify as verify_mod
    try:
        rendered, checks, seconds = labops.verify(lab, _progress, wait)
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
        from rich.console import Console
        from rich.table import Table
        table = Table(title=f"verify {rendered.name}")
        for col in ("check", "node", "what", "result", "detail"):
            table.add_column(col)
        for c in checks:
            table.add_row(c.group, c.node, c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
        console = Console(width=200)
        console.print(table)
        console.print(f"{len(checks) - len(failed)}/{len(checks)} checks passed in {seconds:.2f}s")
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
    typer.echo(f"lab {info['lab']}: {'deployed on ' + str(info.get('runtime')) if info.get('deployed') else 'not deployed'}")
    dp = info.get("dataplane")
    if dp and (dp.get("pid") or dp.get("state") != "not running"):
        how = f"pid {dp['pid']}, {dp.get('tunnel_ends', 0)} tunnel ends, {dp.get('impl') or '?'}" if dp.get("pid") else ""
        typer.echo(f"  userspace tunnel dataplane: {dp['state']}" + (f" ({how})" if how else ""))
    for name, node in info.get("nodes", {}).items():
        ifs = ", ".join(f"{i['name']}({i.get('kind') or 'dev'},{i['mtu']})" for i in node.get("interfaces", []))
        typer.echo(f"  {name:12} {node.get('state', '?'):8} {node.get('netns') or node.get('container', '')}  {ifs}")


@app.command()
def fault(
    lab: Path = typer.Argument(..., help=LAB_HELP, autocompletion=_complete_lab),
    action: str = typer.Argument(..., help="down | up"),
    target: str = typer.Argument(..., help="a tunnel name, or GATEWAY:underlay"),
) -> None:
    """Take a tunnel or a gateway's underlay link down (or up) on the running lab; verify then
    checks the prediction for that fault (see the lab README, section "When something fails")."""
    from . import labops
    if action not in ("down", "up"):
        raise ClabgenError(f"unknown action {action!r}; valid: down, up")
    active = labops.fault(lab, action, target, _progress)
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
