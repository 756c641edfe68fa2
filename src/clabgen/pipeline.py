"""intent file -> model -> plan -> rendered files -> disk: the render path, kept free of runtime imports."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import intent, plan, render


@dataclass(frozen=True)
class RenderResult:
    out: Path
    files: list[render.RenderedFile]
    changed: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


@contextmanager
def few_collections() -> Iterator[None]:
    """A render makes millions of small objects and frees them itself (they hold few cycles): the
    cyclic collector is off meanwhile. At its default pace (every 700 allocations) it cost a
    200-site render a fifth of its time, and each pass over the young objects also touches the old
    ones they hold, copying the pages the forked children share. Afterwards what survived joins
    the oldest generation without a pass over it (freeze, unfreeze), so turning the collector
    back on does not start with one over everything the render made."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():             # else: what the program froze stays frozen
            gc.freeze()
            gc.unfreeze()
        gc.enable()


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
