"""intent file -> model -> plan -> rendered files -> disk: the render path, kept free of runtime imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import intent, plan, render


@dataclass(frozen=True)
class RenderResult:
    out: Path
    files: list[render.RenderedFile]
    changed: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


def render_intent(path: Path, out: Path | None = None, *, check: bool = False, force: bool = False,
                  display: str | None = None) -> RenderResult:
    lab = intent.read_lab(path, display)
    p = plan.build(lab)
    target = out if out is not None else path.parent
    files = render.render(p, path.name, previous=target)
    if check:
        return RenderResult(target, files, diffs=render.check(files, target))
    return RenderResult(target, files, changed=render.write(files, target, force=force))
