"""The small interface every runtime implements, and the node handle verify uses."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..labdir import RenderedLab

Progress = Callable[[str], None]


class NodeHandle(Protocol):
    name: str

    def exec(self, argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run argv inside the node (no shell)."""
        ...

    def netns(self) -> str:
        """The node's network namespace: a name under /run/netns or a /proc/PID/ns/net path."""
        ...


@dataclass
class DeployReport:
    runtime: str
    lab: str
    already_up: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Runtime(Protocol):
    name: str

    def preflight(self, lab: RenderedLab) -> None: ...
    def deploy(self, lab: RenderedLab, progress: Progress) -> DeployReport: ...
    def destroy(self, lab: RenderedLab, progress: Progress) -> list[str]: ...
    def nodes(self, lab: RenderedLab) -> dict[str, NodeHandle]: ...
    def inspect(self, lab: RenderedLab) -> dict[str, Any]: ...
    def tunnel_state(self, lab: RenderedLab, node: str) -> list[dict[str, Any]]:
        """Userspace tunnels a node runs (as the dataplane reports them); [] for kernel ones."""
        ...


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""
