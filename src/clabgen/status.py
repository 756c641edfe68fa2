"""`clabgen status`: every lab deployed on this machine, on any runtime, and what was left behind.

Labs come from their records (/run/clabgen/<lab>/state.json, runtimes.state.LabState): which
runtime, which namespaces or containers, since when. Each is checked on the host as it is now:
namespaces present, containers running, the userspace tunnel dataplane alive, daemons (FRR and the
like) running inside its namespaces.

What no record claims is an orphan: a clab-* namespace, a container clabgen made, a dataplane
process, a state directory without state.json. Names alone cannot say which lab a namespace was
part of (`clab-ipip-vyos14-gw1` may be lab `ipip`, node `vyos14-gw1`), so orphan namespaces are
grouped by what the kernel knows: namespaces joined by veth pairs were built together. A group's
lab name is only a guess (their common prefix) and is shown as one; containers carry their lab
in a label, so theirs is known.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dataplane, netlink
from .runtimes import leftovers, state
from .runtimes.state import LabState

CLEAN_HINT = "clabgen destroy LAB_DIR"


@dataclass(frozen=True)
class LabStatus:
    lab: str
    runtime: str
    lab_dir: str
    lab_dir_exists: bool
    state: str                       # up | degraded | deploying | half-deployed | down | unreadable
    nodes_up: int
    nodes: int
    down: tuple[str, ...]            # namespaces or containers missing or stopped
    health: tuple[str, ...]          # dataplane / daemons / faults, one phrase each
    started: float | None
    age: str
    clean: tuple[str, ...]           # the command(s) that remove it


@dataclass(frozen=True)
class Orphan:
    kind: str                        # netns | container | process | state-dir
    names: tuple[str, ...]
    lab: str | None                  # known (containers, state dirs) or None
    guess: str | None                # a namespace group's likely lab name
    detail: str
    clean: tuple[str, ...]


@dataclass
class Status:
    labs: list[LabStatus] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def age(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _records() -> tuple[list[LabState], list[tuple[str, str]], list[str]]:
    """(readable records, (lab, why) of unreadable ones, state dirs without state.json)."""
    good: list[LabState] = []
    bad: list[tuple[str, str]] = []
    bare: list[str] = []
    try:
        entries = sorted(p for p in state.RUN_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return good, bad, bare
    for d in entries:
        if not (d / state.STATE_FILE).exists():
            if d.name != "emu":
                bare.append(d.name)
            continue
        try:
            rec = state.read(d.name)
        except state.StateError as exc:
            bad.append((d.name, exc.problems[0].message))
            continue
        if rec is not None:
            good.append(rec)
    return good, bad, bare


def _processes_in(names: Iterable[str]) -> dict[str, list[str]]:
    """Process names (comm) running inside each of these named namespaces."""
    out: dict[str, list[str]] = {}
    for ns in names:
        pids = leftovers.in_namespaces([ns])
        comms = []
        for pid in pids:
            try:
                comms.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except OSError:
                continue
        if comms:
            out[ns] = comms
    return out


def _netns_lab(rec: LabState) -> LabStatus:
    present = [ns for ns in rec.namespaces if netlink.ns_exists(ns)]
    down = tuple(ns for ns in rec.namespaces if ns not in present)
    health: list[str] = []
    sdir = state.state_dir(rec.lab)
    if rec.userspace_tunnels:
        pid = dataplane.running_pid(sdir)
        health.append(f"dataplane running (pid {pid}, {rec.userspace_tunnels} tunnel ends)" if pid
                      else f"dataplane DEAD (it served {rec.userspace_tunnels} tunnel ends)")
    elif rec.deployed:
        from .dataplane import bpf
        ends = sum(len(bpf.tunnels_in(ns)) for ns in present)
        health.append(f"BPF tunnels ({ends} tunnel ends, no process)" if ends else "kernel tunnels")
    daemons = _processes_in(present)
    if daemons:
        kinds = sorted({c for comms in daemons.values() for c in comms})
        health.append(f"{sum(len(c) for c in daemons.values())} daemons in {len(daemons)} namespaces "
                      f"({', '.join(kinds[:4])}{', ...' if len(kinds) > 4 else ''})")
    dead_dataplane = any("DEAD" in h for h in health)
    return _summary(rec, len(present), len(rec.namespaces), down, health, dead_dataplane)


def _summary(rec: LabState, up: int, total: int, down: tuple[str, ...], health: list[str],
             unhealthy: bool = False) -> LabStatus:
    if rec.faults:
        health.append(f"faults: {', '.join(rec.faults)}")
    if not rec.deployed:
        what = "deploying" if _alive(rec.pid) else "half-deployed"
    elif up == 0:
        what = "down"
    elif up < total or unhealthy:
        what = "degraded"
    else:
        what = "up"
    exists = Path(rec.lab_dir).is_dir()
    return LabStatus(rec.lab, rec.runtime, rec.lab_dir, exists, what, up, total, down, tuple(health), rec.started,
                     age(time.time() - rec.started), _clean_recorded(rec, exists))


def _alive(pid: int) -> bool:
    from .procs import alive
    return alive(pid)


def _clean_recorded(rec: LabState, exists: bool) -> tuple[str, ...]:
    if exists:
        return (f"clabgen destroy {shlex.quote(rec.lab_dir)}",)
    # the lab's directory is gone: what its record names, by hand
    out = [_netns_clean(rec.namespaces)] if rec.namespaces else []
    if rec.containers:
        out.append("docker rm -f " + " ".join(shlex.quote(c) for c in rec.containers))
    out.append(f"rm -r {shlex.quote(str(state.state_dir(rec.lab)))}")
    return tuple(out)


def _netns_clean(names: Iterable[str]) -> str:
    """One shell line: stop what runs in each namespace, then delete it."""
    quoted = " ".join(shlex.quote(n) for n in names)
    return f'for ns in {quoted}; do ip netns pids "$ns" | xargs -r kill; ip netns delete "$ns"; done'


def _engine() -> Any | None:
    """The Docker engine if one answers quickly; None otherwise (status never waits for one)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return None
    try:
        import docker
        client = docker.from_env(timeout=5)
        client.ping()
        return client
    except Exception:
        return None


def _container_lab(rec: LabState, client: Any | None) -> LabStatus:
    if client is None:
        return _summary(rec, 0, len(rec.containers), (), ["Docker engine not answering: containers unknown"], True)
    states: dict[str, str] = {}
    for c in client.containers.list(all=True, filters={"label": f"containerlab={rec.lab}"}):
        states[c.name] = c.status
    names = rec.containers or tuple(sorted(states))
    up = [n for n in names if states.get(n) == "running"]
    down = tuple(f"{n} ({states.get(n, 'absent')})" for n in names if n not in up)
    return _summary(rec, len(up), len(names), down, [f"{len(up)}/{len(names)} containers running"])


def _namespace_groups(names: list[str]) -> list[list[str]]:
    """Orphan namespaces joined by veth pairs (`ip netns list-id` inside each names its peers)."""
    pool = set(names)
    links: dict[str, set[str]] = {n: set() for n in names}
    for n in names:
        r = subprocess.run(["ip", "-n", n, "-j", "netns", "list-id"], capture_output=True, text=True, timeout=10)
        try:
            peers = {str(e.get("name")) for e in json.loads(r.stdout or "[]") if e.get("name")}
        except ValueError:
            peers = set()
        for p in peers & pool:
            links[n].add(p)
            links[p].add(n)
    groups: list[list[str]] = []
    seen: set[str] = set()
    for n in sorted(names):
        if n in seen:
            continue
        stack, group = [n], []
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            group.append(x)
            stack.extend(sorted(links[x] - seen))
        groups.append(sorted(group))
    return groups


def guess_lab(group: list[str]) -> str | None:
    """The `-`-separated words their names share after `clab-`, when two or more namespaces share
    some and every name keeps at least one word for its node; else None. A guess, shown as one."""
    if len(group) < 2 or not all(n.startswith("clab-") for n in group):
        return None
    words = [n[len("clab-"):].split("-") for n in group]
    common: list[str] = []
    for parts in zip(*words):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    common = common[:min(len(w) for w in words) - 1]
    return "-".join(common) or None


def _orphan_namespaces(claimed: set[str]) -> list[Orphan]:
    names = [n for n in netlink.ns_list() if n.startswith("clab-") and n not in claimed]
    out = []
    for group in _namespace_groups(names):
        guess = guess_lab(group)
        daemons = _processes_in(group)
        detail = (f"{len(group)} namespace{'s' if len(group) > 1 else ''} joined by veth pairs"
                  + (f", {sum(len(c) for c in daemons.values())} processes inside" if daemons else ""))
        clean = (_netns_clean(group),)
        out.append(Orphan("netns", tuple(group), None, guess, detail, clean))
    return out


def _orphan_containers(client: Any, recorded: set[str]) -> list[Orphan]:
    by_lab: dict[str, list[Any]] = {}
    for c in client.containers.list(all=True, filters={"label": "containerlab"}):
        lab = c.labels.get("containerlab", "")
        ours = c.labels.get("clab-owner") == "clabgen" or \
            str(c.labels.get("clab-topo-file", "")).startswith(f"{state.RUN_DIR}/")
        if ours and lab not in recorded:
            by_lab.setdefault(lab, []).append(c)
    out = []
    for lab, cs in sorted(by_lab.items()):
        names = tuple(sorted(c.name for c in cs))
        topo = next((c.labels.get("clab-topo-file") for c in cs if c.labels.get("clab-owner") == "clabgen"), None)
        lab_dir = str(Path(topo).parent) if topo and Path(topo).is_file() else None
        clean = (f"clabgen destroy {shlex.quote(lab_dir)}",) if lab_dir else ("docker rm -f " + " ".join(names),)
        running = sum(1 for c in cs if c.status == "running")
        out.append(Orphan("container", names, lab, None, f"{len(cs)} containers ({running} running), no record", clean))
    return out


def _orphan_dataplanes(known: set[str]) -> list[Orphan]:
    """Userspace dataplane processes whose lab has no record (`--state-dir /run/clabgen/<lab>`)."""
    out = []
    for pid, argv in _command_lines():
        if leftovers.DATAPLANE_MODULE not in argv or b"--state-dir" not in argv:
            continue
        i = argv.index(b"--state-dir")
        sdir = Path(argv[i + 1].decode(errors="replace")) if i + 1 < len(argv) else None
        if sdir is None or sdir.parent != state.RUN_DIR or sdir.name in known:
            continue
        out.append(Orphan("process", (str(pid),), sdir.name, None, f"userspace tunnel dataplane of lab {sdir.name}",
                          (f"kill {pid}",)))
    return out


def _command_lines() -> Iterable[tuple[int, list[bytes]]]:
    """Processes of this host's mount namespace (a container's /run/clabgen is its own) and their argv."""
    try:
        mine = os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        mine = None
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if mine is not None and os.stat(f"/proc/{entry}/ns/mnt").st_ino != mine:
                continue
            yield int(entry), Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def collect() -> Status:
    """Everything at once (read-only: status changes nothing)."""
    out = Status()
    records, unreadable, bare = _records()
    client = _engine()
    for rec in records:
        out.labs.append(_netns_lab(rec) if rec.runtime == "netns" else _container_lab(rec, client))
    for lab, why in unreadable:
        out.labs.append(LabStatus(lab, "?", "?", False, "unreadable", 0, 0, (), (why,), None, "?",
                                  (f"clabgen destroy LAB_DIR  (the lab directory of {lab})",)))
    claimed = {ns for r in records for ns in r.namespaces}
    recorded = {r.lab for r in records} | {lab for lab, _ in unreadable}
    out.orphans += _orphan_namespaces(claimed)
    if client is not None:
        out.orphans += _orphan_containers(client, recorded)
    out.orphans += _orphan_dataplanes(recorded)
    for name in bare:
        sdir = state.state_dir(name)
        out.orphans.append(Orphan("state-dir", (str(sdir),), name, None, "state directory without state.json",
                                  (f"rm -r {shlex.quote(str(sdir))}",)))
    if client is None and records and any(r.runtime != "netns" for r in records):
        out.notes.append("no Docker engine answers: container labs are listed from their records only")
    return out
