"""What the run commands do, as functions returning data; the CLI only prints."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from . import capture as capture_mod
from . import labdir, runtimes
from . import trace as trace_mod
from . import verify as verify_mod
from .errors import Problem, RuntimeFailure
from .runtimes import state
from .runtimes.base import DeployReport, NodeHandle, Progress, Runtime, quiet
from .runtimes.state import LabState


def runtime_for(lab: labdir.RenderedLab, requested: str | None = None) -> Runtime:
    """The runtime that deployed the lab (from its state), else the one asked for, else netns."""
    recorded = state.read_quietly(lab.name)
    return runtimes.get(recorded.runtime if recorded else requested or "netns")


def choose_runtime(progress: Progress = quiet) -> str:
    """`--runtime auto`: containerlab if its binary exists and an engine answers, else docker if an
    engine answers, else netns; says which and why."""
    from .runtimes.containerlab import find_binary
    from .runtimes.docker import connect
    binary = find_binary()
    try:
        connect()
        engine = ""
    except RuntimeFailure as exc:
        engine = exc.problems[0].message
    if binary and not engine:
        chosen, why = "containerlab", f"{binary} found and a Docker engine answers"
    elif not engine:
        chosen, why = "docker", "a Docker engine answers but containerlab is not installed (`make containerlab`)"
    else:
        chosen, why = "netns", engine + ("" if binary else "; containerlab is not installed either")
    progress(f"runtime auto: {chosen} ({why})")
    return chosen


def deploy(arg: Path, runtime: str, progress: Progress = quiet, **options: Any) -> DeployReport:
    """Deploy on `runtime` ("auto": see choose_runtime) with the runtime's `options` (tunnels=)."""
    if runtime != "auto" and runtime not in runtimes.RUNTIMES:
        raise RuntimeFailure(f"unknown runtime {runtime!r}", f"valid: auto, {', '.join(sorted(runtimes.RUNTIMES))}")
    lab = labdir.resolve(arg)
    if runtime == "auto":
        runtime = choose_runtime(progress)
    rt = runtimes.get(runtime, **options)
    with state.lock(lab.name, progress):
        return rt.deploy(lab, progress)


def destroy(arg: Path, progress: Progress = quiet) -> list[str]:
    """Everything the lab made, on the runtime its state names, or on every runtime when the state
    is gone or unreadable (each finds the lab's namespaces, processes and containers by name)."""
    lab = labdir.resolve(arg)
    with state.lock(lab.name, progress):
        recorded = state.read_quietly(lab.name)
        names = [recorded.runtime] if recorded else list(runtimes.RUNTIMES)
        removed: list[str] = []
        for name in names:
            removed += runtimes.get(name).destroy(lab, progress)
        return removed


def running(lab: labdir.RenderedLab, arg: Path, why: str = "") -> LabState:
    """The lab's state, or the error every run command gives for a lab that is not up."""
    current = state.read(lab.name)
    if current is None or not current.deployed:
        what = "is not deployed" if current is None else "is only half deployed"
        raise RuntimeFailure(f"lab {lab.name} {what}{why}", f"deploy it first: clabgen deploy {arg}")
    return current


def node_handle(lab: labdir.RenderedLab, current: LabState, node: str) -> NodeHandle:
    handles = runtimes.get(current.runtime).nodes(lab)
    if node not in handles:
        raise RuntimeFailure(Problem(None, f"no node {node!r} in lab {lab.name}", f"nodes: {', '.join(handles)}"))
    return handles[node]


def verify(arg: Path, progress: Progress = quiet, wait: float = 60.0
           ) -> tuple[labdir.RenderedLab, list[verify_mod.Check], float]:
    lab = labdir.resolve(arg)
    with state.lock(lab.name, progress):
        current = running(lab, arg)
        t0 = time.monotonic()
        if current.faults:
            progress(f"faults in place: {', '.join(current.faults)} (checking the prediction for them)")
        checks = verify_mod.verify(lab, runtimes.get(current.runtime), current.faults, wait)
        return lab, checks, time.monotonic() - t0


def inspect(arg: Path) -> dict[str, Any]:
    lab = labdir.resolve(arg)
    current = state.read_quietly(lab.name)
    if current is None:
        return {"lab": lab.name, "deployed": False, "nodes": {}}
    return runtime_for(lab).inspect(lab)


def fault(arg: Path, action: str, target: str, progress: Progress = quiet) -> list[str]:
    """Take a tunnel (`NAME`) or a gateway's underlay link (`GATEWAY:underlay`) down or up on the
    running lab; verify then checks the contract's prediction for it. Returns the faults now active."""
    from . import faults as faults_mod
    lab = labdir.resolve(arg)
    with state.lock(lab.name, progress):
        current = running(lab, arg)
        f = faults_mod.resolve(lab.contract, target)
        handles = runtimes.get(current.runtime).nodes(lab)
        faults_mod.apply(lab, handles, f, up=action == "up", progress=progress)
        active = [x for x in current.faults if x != f.scenario]
        if action == "down":
            active.append(f.scenario)
        state.write(replace(current, faults=tuple(active)))
        return active


@dataclass(frozen=True)
class TraceReport:
    lab: str
    src: str
    dst: str
    dst_node: str | None
    faults: tuple[str, ...]
    paths: list[trace_mod.Path]
    answers: list[trace_mod.Answer] | None = None       # --live
    compared: list[trace_mod.Compared] | None = None

    @property
    def ok(self) -> bool:
        if self.compared is None:
            return any(p.arrives for p in self.paths)
        return bool(self.compared) and all(c.ok for c in self.compared)


def trace(arg: Path, src: str, dst: str, live: bool = False, progress: Progress = quiet) -> TraceReport:
    """The predicted path(s) from src to dst by the contract's routes (a fault scenario's while a
    fault is in place), and with `live` the TTL-stepped probe's answers lined up with them."""
    lab = labdir.resolve(arg)
    ends = trace_mod.endpoints(lab.contract, src, dst)
    current = state.read_quietly(lab.name)
    faults = current.faults if current is not None and current.deployed else ()
    routes = verify_mod.Expectation.of(lab.contract, faults).routes if faults else None
    paths = trace_mod.predict(lab.contract, ends.src, ends.dst, routes)
    report = TraceReport(lab.name, src, str(ends.dst), ends.dst_name, faults, paths)
    if not live:
        return report
    handle = runtimes.get(running(lab, arg, "; --live needs it running").runtime).nodes(lab)[ends.src]
    longest = max((max(s.hop for s in p.stops) for p in paths), default=0)
    progress(f"probing {ends.dst} from {ends.src} with TTL 1..{longest + 2}")
    answers = trace_mod.probe(handle.netns(), ends.dst, longest + 2, trace_mod.addresses(lab.contract))
    return replace(report, answers=answers, compared=trace_mod.compare(paths, answers))


def capture(arg: Path, node: str, iface: str, out: IO[bytes] | None, *, decode: bool, count: int | None = None,
            seconds: float | None = None, expression: str | None = None, progress: Progress = quiet,
            show: Progress | None = None) -> capture_mod.Stats:
    """Capture on a node's interface of the running lab: pcapng into `out` and/or decoded on stdout."""
    from . import netlink
    lab = labdir.resolve(arg)
    current = running(lab, arg)
    ns = node_handle(lab, current, node).netns()
    names = [link.ifname for link in netlink.links(ns)]
    if iface not in names:
        raise RuntimeFailure(Problem(None, f"no interface {iface!r} on {node}", f"interfaces: {', '.join(names)}"))
    from contextlib import ExitStack

    from .dataplane import bpf
    sock, link = capture_mod.open_socket(ns, iface, expression)
    held = ExitStack()
    if held.enter_context(bpf.tapped(ns, iface)):
        progress(f"{iface} is a BPF tunnel end: until the capture ends its peer's ingress wraps what it sends, "
                 "so the capture sees both directions")
    sinks: list[IO[bytes]] = [out] if out is not None else []
    dec = capture_mod.start_decoder(show) if decode else None
    if dec is not None and dec.proc.stdin is not None:
        sinks.append(dec.proc.stdin)
    head = capture_mod.section_header(f"clabgen capture {lab.name} {node} {iface}") + \
        capture_mod.interface_block(link, f"{node}:{iface}", f"lab {lab.name}, node {node}, {current.runtime} runtime")
    broken = False

    def put(block: bytes) -> None:
        nonlocal broken
        for s in sinks:
            try:
                s.write(block)
                s.flush()
            except (BrokenPipeError, ValueError):
                broken = True

    where = " and ".join(x for x in ("the decoder" if decode else "", "the pcapng" if out else "") if x)
    progress(f"capturing on {node}:{iface} ({'ethernet' if link == capture_mod.LINKTYPE_ETHERNET else 'raw IP'})"
             + (f", filter {expression!r}" if expression else "") + f" into {where}; Ctrl-C stops")
    try:
        put(head)
        stats = capture_mod.run(sock, lambda data, n, ns_time, outgoing: put(
            capture_mod.packet_block(data, n, ns_time, outgoing)), count, seconds,
            alive=lambda: not broken and (dec is None or dec.proc.poll() is None))
    finally:
        held.close()
        sock.close()
        if dec is not None:
            dec.finish()
    return stats


def shell_argv(arg: Path, node: str, interactive: bool = True) -> list[str]:
    """The command that opens a shell in a node of the running lab: bash (sh where there is none)
    in its namespace with the host's tools, or inside its container (`docker exec`)."""
    import shutil

    from .runtimes.docker import DockerNode
    from .runtimes.netns import NetnsNode
    lab = labdir.resolve(arg)
    handle = node_handle(lab, running(lab, arg), node)
    prompt = f"PS1=[{lab.name} {node}] \\w# "
    if isinstance(handle, NetnsNode):
        shell = shutil.which("bash")
        tail = [shell, "--norc"] if shell else ["sh"]
        tail += ["-i"] if interactive else []
        return ["ip", "netns", "exec", handle.ns, "env", prompt, *tail]
    if isinstance(handle, DockerNode):
        docker = shutil.which("docker")
        if docker is None:
            raise RuntimeFailure("an interactive shell in a container needs the docker command", "apt-get install docker.io")
        flags = ["-it"] if interactive else ["-i"]
        pick = "command -v bash >/dev/null 2>&1 && exec bash -i || exec sh -i" if interactive else \
            "command -v bash >/dev/null 2>&1 && exec bash || exec sh"
        return [docker, "exec", *flags, "-e", prompt, handle.container.name, "sh", "-c", pick]
    raise RuntimeFailure(f"no shell for nodes of the {type(handle).__name__} kind")
