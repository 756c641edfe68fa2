"""Template folders and their platform.yml: what each platform is, supports and renders.

A platform folder under `templates/` holds a `platform.yml` of facts and the templates of its
outputs. `parent:` inherits both: the parent's facts are the defaults, and a template the child
does not have is taken from the parent (a child template may also `{% extends
"<parent>/<file>" %}` and override blocks). Code asks a platform for facts
(`platform.supports("gre")`, `platform.static_routes.metric`), never `if release == ...`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import codec
from .errors import ClabgenError, Problem, Where

if TYPE_CHECKING:
    import jinja2

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
    startup: bool = False          # the node's startup configuration (mounted at startup_config)
    when: str | None = None        # each gateway: only those whose template view has this key set
    private: bool = False          # a key file: mode 0600


@dataclass(frozen=True)
class RouteFacts:
    """How the platform's routes look in the kernel (`ip route`: proto and metric)."""

    proto: str
    metric: int | None = None


@dataclass(frozen=True)
class ClabFacts:
    """The containerlab node definition a gateway of this platform gets."""

    kind: str = "linux"
    cmd: str | None = None
    binds: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlatformFile:
    """Every key a platform.yml may hold (after its parents' keys are merged in)."""

    role: str = "lab"                       # "gateway" or "lab"
    family: str | None = None               # vyos
    release: str | None = None              # "1.4"
    default_image: str | None = None
    tunnels: tuple[str, ...] = ()           # tunnel types the platform's config can express
    routing: tuple[str, ...] = ()           # routing protocols it renders
    ifnames: dict[str, str] = field(default_factory=dict)   # interface kind -> naming rule (regex)
    tunnel_mtu_in_config: bool = False      # write the tunnel MTU although it is the default
    ethernet_mtu_in_config: bool = False    # write the ethernet MTU although it is the veth's
    mtu: dict[str, tuple[int, int]] = field(default_factory=dict)   # interface kind -> MTU range the config accepts
    static_routes: RouteFacts | None = None
    startup_config: str | None = None       # where the startup config is mounted in the node
    emulator: str | None = None             # clabgen.emu entry that runs it without the vendor image
    emulator_image: str | None = None       # local stand-in image (recipes/<name>) carrying the emulator
    wireguard_key_file: str | None = None   # where the node reads its WireGuard private key (VyOS 1.2)
    footer: str = ""                        # the release's config footer
    clab: ClabFacts = ClabFacts()
    outputs: tuple[Output, ...] = ()


@dataclass(frozen=True)
class Platform:
    name: str
    folders: tuple[Path, ...]       # own folder first, then parents (template search path)
    facts: PlatformFile

    @property
    def role(self) -> str:
        return self.facts.role

    @property
    def outputs(self) -> tuple[Output, ...]:
        return self.facts.outputs

    def supports(self, tunnel_type: str) -> bool:
        return tunnel_type in self.facts.tunnels

    def supports_routing(self, protocol: str) -> bool:
        return protocol in self.facts.routing

    @property
    def startup_output(self) -> Output | None:
        return next((o for o in self.outputs if o.startup), None)

    def environment(self) -> jinja2.Environment:
        """Templates by bare name from the nearest folder of the chain, or `<platform>/<file>`.
        Jinja is imported here, not with the module: validate and the runtimes never render."""
        import jinja2
        names = [f.name for f in self.folders]
        loader = jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(str(f)) for f in self.folders]
            + [jinja2.PrefixLoader({n: jinja2.FileSystemLoader(str(f)) for n, f in zip(names, self.folders)})])
        env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                 lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                                 bytecode_cache=_bytecode_cache())
        env.filters["format_each"] = format_each
        return env


def format_each(rows: Iterable[Mapping[str, Any]], text: str) -> str:
    """`text` once per row, its `$field`s replaced by the row's values, one row per line: a big
    lab's tens of thousands of static routes cost a str.format each, not a pass of a Jinja loop."""
    return "\n".join(map(_format_of(text).format_map, rows))


@cache
def _format_of(text: str) -> str:
    """`$field` text as a str.format string (its own braces doubled)."""
    return re.sub(r"\$(\w+)", r"{\1}", text.replace("{", "{{").replace("}", "}}"))


@cache
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept in clabgen's cache directory (keyed by each template's source), so a
    cold render does not lex, parse and compile every template again; none where it is not writable."""
    import jinja2

    from .cachedir import cache_dir
    where = cache_dir() / "jinja"
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(where)) if os.access(where, os.W_OK | os.X_OK) else None


def _raw(name: str) -> dict[str, Any]:
    path = TEMPLATES_DIR / name / "platform.yml"
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ClabgenError(Problem(Where(str(path)), f"no platform {name!r}",
                               f"platforms: {', '.join(all_platforms())}")) from None
    if not isinstance(data, dict):
        raise ClabgenError(Problem(Where(str(path)), "expected a mapping"))
    return data


@cache
def load(name: str) -> Platform:
    raw = _raw(name)
    folders = [TEMPLATES_DIR / name]
    merged: dict[str, Any] = {}
    parent = raw.pop("parent", None)
    if parent:
        base = load(str(parent))
        folders.extend(base.folders)
        merged.update(codec.to_data(base.facts))
    merged.update(raw)
    try:
        facts = codec.from_data(PlatformFile, merged)
    except codec.CodecError as exc:
        raise ClabgenError(Problem(Where(str(TEMPLATES_DIR / name / "platform.yml"), field=exc.path),
                                   exc.message)) from None
    return Platform(name, tuple(folders), facts)


def all_platforms() -> tuple[str, ...]:
    return tuple(d.name for d in sorted(TEMPLATES_DIR.iterdir()) if (d / "platform.yml").is_file())


@cache
def gateway_platforms() -> tuple[str, ...]:
    return tuple(n for n in all_platforms() if load(n).role == "gateway")
