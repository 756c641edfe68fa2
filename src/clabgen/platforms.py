"""Template folders and their platform.yml: what each platform supports and renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

# Shipped inside the package (wheel and sdist), never looked up relative to a checkout.
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# Folders rendered for every lab, whatever its gateways run.
LAB_OUTPUTS = ("containerlab", "linux", "docs")


@dataclass(frozen=True)
class Output:
    template: str
    path: str                      # may contain {lab} / {node}
    each: str = "lab"              # "lab" or "gateway"
    set_listing: str | None = None  # VyOS: also write the `set` form of this config tree
    executable: bool = False


@dataclass(frozen=True)
class Platform:
    name: str
    role: str                       # "gateway" or "lab"
    folders: tuple[Path, ...]       # own folder first, then parents (template search path)
    data: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[Output, ...] = ()

    def supports(self, tunnel_type: str) -> bool:
        return tunnel_type in self.data.get("tunnels", ())

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _raw(name: str) -> dict[str, Any]:
    path = TEMPLATES_DIR / name / "platform.yml"
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


@lru_cache(maxsize=None)
def load(name: str) -> Platform:
    raw = _raw(name)
    folders = [TEMPLATES_DIR / name]
    data: dict[str, Any] = {}
    parent = raw.get("parent")
    if parent:
        base = load(parent)
        folders.extend(base.folders)
        data.update(base.data)
    data.update({k: v for k, v in raw.items() if k != "parent"})
    outputs = tuple(Output(**o) for o in data.get("outputs", ()))
    return Platform(name, data.get("role", "lab"), tuple(folders), data, outputs)


@lru_cache(maxsize=None)
def gateway_platforms() -> tuple[str, ...]:
    names = []
    for d in sorted(TEMPLATES_DIR.iterdir()):
        if (d / "platform.yml").is_file() and load(d.name).role == "gateway":
            names.append(d.name)
    return tuple(names)
