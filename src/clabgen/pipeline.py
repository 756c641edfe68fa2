"""intent file -> model -> plan -> rendered files -> disk: the render path, kept free of runtime imports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import intent, plan, render
from .collector import few_collections


@dataclass(frozen=True)
class RenderResult:
    out: Path
    files: list[render.RenderedFile]
    changed: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


def render_intent(path: Path, out: Path | None = None, *, check: bool = False, force: bool = False,
                  display: str | None = None) -> RenderResult:
    with few_collections():
        return _render_intent(path, out, check=check, force=force, display=display)


def _render_intent(path: Path, out: Path | None, *, check: bool, force: bool, display: str | None) -> RenderResult:
    lab = intent.read_lab(path, display)
    target = out if out is not None else path.parent
    # the picture (from the topology, before the routes) and a big lab's gateway files (from the
    # draft, written into the stage there too) are made in other processes while the rest of the
    # plan is derived
    pictures: list[Callable[[], bytes]] = []
    started: list[render.Started] = []
    stage = None if check else render.Stage(target)
    try:
        p = plan.build(lab, laid_out=lambda topology: pictures.append(render.start_picture(topology, target)),
                       drafted=lambda draft: started.append(render.start(draft, path.name, target,
                                                                         pictures[0] if pictures else None, stage)))
        files = render.render(p, path.name, previous=target, started=started[0] if started else None)
        if check:
            return RenderResult(target, files, diffs=render.check(files, target))
        return RenderResult(target, files, changed=render.write(files, target, force=force, stage=stage))
    finally:
        for begun in started:
            begun.stop()
        if stage is not None:
            stage.remove()
