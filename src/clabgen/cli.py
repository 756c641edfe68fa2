"""The `clabgen` command: parse options, call one function, print its result or the problems."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import ClabgenError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Turn a tunnel-lab intent into a containerlab/VyOS/Linux lab; deploy, verify, destroy it.")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@app.command()
def validate(intent: Path = typer.Argument(..., help="intent YAML file")) -> None:
    """Check an intent file; print every problem as FILE:LINE:COL: field: message."""
    from . import intent as intent_mod, plan as plan_mod
    lab = intent_mod.read_lab(intent, _display(intent))
    p = plan_mod.build(lab)
    for w in p.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"{_display(intent)}: ok ({len(p.nodes)} nodes, {len(p.links)} links, {len(p.tunnels)} tunnels)")


@app.command()
def render(
    intent: Path = typer.Argument(..., help="intent YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory (default: next to the intent)"),
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


def main() -> None:
    """Entry point: problems become `file:line:col: field: message` lines and exit 2, never a traceback."""
    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except ClabgenError as exc:
        for p in exc.problems:
            print(f"error: {p}" if p.where is None else str(p), file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click's usage errors (typer may vendor click, so duck-type them)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise
