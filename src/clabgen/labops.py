"""What the run commands do, as functions returning data; the CLI only prints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import labdir, runtimes, verify as verify_mod
from .errors import RuntimeFailure
from .runtimes import state
from .runtimes.base import DeployReport, Progress, Runtime, quiet


def runtime_for(lab: labdir.RenderedLab, requested: str | None = None) -> Runtime:
    """The runtime that deployed the lab (from its state), else the one asked for, else netns."""
    recorded = (state.read(lab.name) or {}).get("runtime")
    return runtimes.get(recorded or requested or "netns")


def choose_runtime(progress: Progress = quiet) -> str:
    """`--runtime auto`: containerlab if its binary exists and an engine answers, else docker if an
    engine answers, else netns; says which and why."""
    from .runtimes.containerlab import find_binary
    from .runtimes.docker import connect
    binary = find_binary()
    try:
        connect()
        engine = ""
    except RuntimeFailure as exc:
        engine = exc.problems[0].message
    if binary and not engine:
        chosen, why = "containerlab", f"{binary} found and a Docker engine answers"
    elif not engine:
        chosen, why = "docker", "a Docker engine answers but containerlab is not installed (`make containerlab`)"
    else:
        chosen, why = "netns", engine + ("" if binary else "; containerlab is not installed either")
    progress(f"runtime auto: {chosen} ({why})")
    return chosen


def deploy(arg: Path, runtime: str, progress: Progress = quiet, **options: Any) -> DeployReport:
    """Deploy on `runtime` ("auto": see choose_runtime). `options` (tunnels=) are the netns runtime's;
    with auto they apply only if netns is chosen."""
    if runtime != "auto" and runtime not in runtimes.RUNTIMES:
        raise RuntimeFailure(f"unknown runtime {runtime!r}", f"valid: auto, {', '.join(sorted(runtimes.RUNTIMES))}")
    lab = labdir.resolve(arg)
    if runtime == "auto":
        runtime = choose_runtime(progress)
        if runtime != "netns":
            if options.get("tunnels", "auto") != "auto":
                progress(f"--tunnels {options['tunnels']} applies to the netns runtime only; ignored on {runtime}")
            options = {}
    return runtimes.get(runtime, **options).deploy(lab, progress)


def destroy(arg: Path, progress: Progress = quiet) -> list[str]:
    lab = labdir.resolve(arg)
    recorded = (state.read(lab.name) or {}).get("runtime")
    names = [recorded] if recorded else list(runtimes.RUNTIMES)
    removed: list[str] = []
    for name in names:
        removed += runtimes.get(name).destroy(lab, progress)
    return removed


def verify(arg: Path) -> tuple[labdir.RenderedLab, list[verify_mod.Check], float]:
    lab = labdir.resolve(arg)
    if not state.read(lab.name):
        raise RuntimeFailure(f"lab {lab.name} is not deployed", f"deploy it first: clabgen deploy {arg}")
    t0 = time.monotonic()
    checks = verify_mod.verify(lab, runtime_for(lab))
    return lab, checks, time.monotonic() - t0


def inspect(arg: Path) -> dict[str, Any]:
    lab = labdir.resolve(arg)
    if not state.read(lab.name):
        return {"lab": lab.name, "deployed": False, "nodes": {}}
    return runtime_for(lab).inspect(lab)
