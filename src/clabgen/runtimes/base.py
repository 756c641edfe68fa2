"""The small interface every runtime implements, and the deploy skeleton they share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..errors import RuntimeFailure
from ..labdir import RenderedLab
from . import state as state_mod
from .state import LabState

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

    def crypto_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """The argv prefix that runs `wg` or `swanctl` inside the node against its encrypted tunnels'
        daemons (netns: the run-dir helper that puts the node's own directory over /run)."""
        ...

    def routing_cli(self, lab: RenderedLab, node: str) -> list[str]:
        """The argv prefix of vtysh talking to the node's routing daemons, to be run inside the node
        (NodeHandle.exec); `vtysh()` below runs one command with it. RuntimeFailure when the node
        runs none."""
        ...


def vtysh(rt: Runtime, lab: RenderedLab, node: str, command: str, timeout: float = 10.0) -> str:
    """One vtysh command (`show ip ospf neighbor json`) on a node's FRR, any runtime; its stdout.
    RuntimeFailure with vtysh's own words when it fails (no daemons, unknown command)."""
    argv = [*rt.routing_cli(lab, node), "-c", command]
    try:
        result = rt.nodes(lab)[node].exec(argv, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(f"{node}: vtysh -c {command!r} did not answer within {timeout:g}s") from None
    said = (result.stderr.strip() or result.stdout.strip()).splitlines()
    if result.returncode != 0 or result.stdout.lstrip().startswith("%"):
        raise RuntimeFailure(f"{node}: vtysh -c {command!r} failed (exit {result.returncode}): "
                             f"{' / '.join(said[-3:]) or 'no output'}")
    return result.stdout


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""


def deploy_once(rt: Runtime, lab: RenderedLab, progress: Progress, *,
                prepare: Callable[[LabState | None], dict[str, Any]],
                build: Callable[[DeployReport, LabState], None]) -> DeployReport:
    """The deploy skeleton every runtime shares; the caller holds the lab's lock.

    A lab that is up is left alone; a half-finished deploy (its process was killed) is reported
    with what cleans it. `prepare` checks the host and the lab's inputs (raising before anything
    exists) and returns what to record; the record is written before `build` creates anything, so
    a destroy can always find a half-built lab; any failure or Ctrl-C in `build` rolls back.
    """
    t0 = time.monotonic()
    report = DeployReport(rt.name, lab.name)
    current = state_mod.read(lab.name)
    if current is not None and current.deployed:
        report.already_up = True
        report.notes.append(f"lab {lab.name} is already deployed ({current.runtime}); nothing changed")
        return report
    if current is not None:
        made = ", ".join(current.namespaces or current.containers) or "its state"
        when = datetime.fromtimestamp(current.started).strftime("%Y-%m-%d %H:%M:%S")
        raise RuntimeFailure(
            f"lab {lab.name} has a half-finished {current.runtime} deploy (pid {current.pid}, started {when}, "
            f"killed before it finished); what it may have left: {made}",
            f"clean it up with `clabgen destroy {lab.dir}`, then deploy again")
    record = state_mod.new(lab.name, rt.name, lab.dir, **prepare(current))
    state_mod.write(record)
    try:
        build(report, record)
    except (Exception, KeyboardInterrupt) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        progress(f"deploy failed ({type(exc).__name__}: {first}); rolling back")
        rt.destroy(lab, quiet)
        if isinstance(exc, (KeyboardInterrupt, RuntimeFailure)):
            raise
        raise RuntimeFailure(f"deploy of {lab.name} failed and was rolled back: {type(exc).__name__}: {exc}") from exc
    state_mod.mark_deployed(state_mod.read(lab.name) or record)
    report.seconds = time.monotonic() - t0
    return report


def forget(lab: RenderedLab, removed: list[str], progress: Progress) -> list[str]:
    """The last step of every destroy: drop the lab's state directory and report what went."""
    if state_mod.remove(lab.name):
        removed.append(str(state_mod.state_dir(lab.name)))
    for r in removed:
        progress(f"removed {r}")
    return removed
