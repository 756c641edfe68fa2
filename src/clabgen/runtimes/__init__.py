"""Runtimes deploy a rendered lab somewhere real; verify talks to every one the same way."""

from __future__ import annotations

from importlib import import_module

from ..errors import ClabgenError, Problem
from .base import Runtime

# name -> "module:Class"; imported on use so the render path never loads docker.
RUNTIMES: dict[str, str] = {
    "netns": "clabgen.runtimes.netns:NetnsRuntime",
    "docker": "clabgen.runtimes.docker:DockerRuntime",
    "containerlab": "clabgen.runtimes.containerlab:ContainerlabRuntime",
}


def get(name: str, **options: object) -> Runtime:
    if name not in RUNTIMES:
        raise ClabgenError(Problem(None, f"unknown runtime {name!r}", f"valid: {', '.join(sorted(RUNTIMES))}"))
    module, _, cls = RUNTIMES[name].partition(":")
    runtime: Runtime = getattr(import_module(module), cls)(**options)
    return runtime
