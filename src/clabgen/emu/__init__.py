"""Emulation of network OS configurations on plain Linux namespaces (no vendor image needed).

A platform names its emulator (`emulator:` in platform.yml, recorded in the lab contract); the
runtimes look it up here. An emulator reads a startup config (raising FILE:LINE errors for what it
would apply but cannot) and applies its dataplane subset in two steps: links and tunnels first
(returning the tunnels a userspace dataplane must serve), routing once every tunnel exists. Routing
may mean daemons (VyOS: FRR for ospf/bgp/bfd): the runtime gives each node a directory of its own
for their files, so everything they write stays under the lab's state directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

# name -> "module:Class"; imported on use.
EMULATORS: dict[str, str] = {"vyos": "clabgen.emu.apply:VyosEmulator"}
# name -> "module:function(text, file) -> {daemon: config}": the routing daemons' configuration a
# startup config gives (render writes it into the Linux scripts; imports no runtime module).
DAEMON_CONFIGS: dict[str, str] = {"vyos": "clabgen.emu.frr:from_text"}


@dataclass(frozen=True)
class RouteFacts:
    """How the emulated platform installs its static routes (`ip route`: proto and metric)."""

    proto: str = "static"
    metric: int | None = None


class Emulator(Protocol):
    name: str

    def load(self, path: Path) -> Any:
        """Parse a startup config; ClabgenError with FILE:LINE for a line it cannot apply."""
        ...

    def apply_links(self, ns: str | None, cfg: Any, *, tunnels: str = "auto", spec_netns: str | None = None,
                    run_dir: Path | None = None, files: Mapping[str, Path] | None = None) -> Any:
        """Addresses, MTUs and tunnels; returns what was applied (with the userspace tunnels).
        run_dir: the node's own directory for the daemons of encrypted tunnels (mounted over their
        /run; None in a container); files: container paths -> host paths, from the node's binds."""
        ...

    def apply_routes(self, ns: str | None, cfg: Any, applied: Any, facts: RouteFacts, run_dir: Path | None) -> None:
        """Routes (static, or routing daemons started in ns). run_dir: the node's own directory for the
        daemons' files (netns: <state>/frr/<node>, mounted over /run for them); None in a container,
        which has its own /run and /etc."""
        ...

    def host_problems(self, cfg: Any) -> list[str]:
        """What this config needs that the machine lacks (e.g. FRR for OSPF); checked before a deploy."""
        ...


def daemon_configs(emulator: str, text: str, file: str) -> dict[str, str]:
    """The routing daemons' config files (daemon -> text, in start order) for a startup config."""
    if emulator not in DAEMON_CONFIGS:
        return {}
    module, _, fn = DAEMON_CONFIGS[emulator].partition(":")
    files: dict[str, str] = getattr(import_module(module), fn)(text, file)
    return files


def get(name: str) -> Emulator:
    """The registry entry; an unknown name lists the valid ones."""
    if name not in EMULATORS:
        raise ValueError(f"unknown emulator {name!r}; valid: {', '.join(sorted(EMULATORS))}")
    module, _, cls = EMULATORS[name].partition(":")
    return getattr(import_module(module), cls)()  # type: ignore[no-any-return]
