"""The small interface every runtime implements, and the node handle verify uses."""

from __future__ import annotations

import subprocess
import time
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


def deploy_once(rt: Runtime, lab: RenderedLab, progress: Progress, *,
                prepare: Callable[[dict[str, Any] | None], dict[str, Any]],
                build: Callable[[DeployReport], None]) -> DeployReport:
    """The deploy skeleton every runtime shares.

    A lab that is up is left alone. `prepare` checks the host (raising before anything exists)
    and returns what to record; the record is written before `build` creates anything, so a
    destroy can always find a half-built lab; any failure or Ctrl-C in `build` rolls back.
    """
    from ..errors import RuntimeFailure
    from . import state

    t0 = time.monotonic()
    report = DeployReport(rt.name, lab.name)
    current = state.read(lab.name)
    if current and current.get("deployed"):
        report.already_up = True
        report.notes.append(f"lab {lab.name} is already deployed ({current.get('runtime')}); nothing changed")
        return report
    record = prepare(current)
    state.write(lab.name, {"lab": lab.name, "runtime": rt.name, "lab_dir": str(lab.dir), "deployed": False, **record})
    try:
        build(report)
    except (Exception, KeyboardInterrupt) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        progress(f"deploy failed ({type(exc).__name__}: {first}); rolling back")
        rt.destroy(lab, quiet)
        if isinstance(exc, (KeyboardInterrupt, RuntimeFailure)):
            raise
        raise RuntimeFailure(f"deploy of {lab.name} failed and was rolled back: {type(exc).__name__}: {exc}") from exc
    state.write(lab.name, {**(state.read(lab.name) or {}), "deployed": True})
    report.seconds = time.monotonic() - t0
    return report


def forget(lab: RenderedLab, removed: list[str], progress: Progress) -> list[str]:
    """The last step of every destroy: drop the lab's state directory and report what went."""
    from . import state

    if state.remove(lab.name):
        removed.append(str(state.state_dir(lab.name)))
    for r in removed:
        progress(f"removed {r}")
    return removed
