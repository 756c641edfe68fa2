"""Scaling benchmarks: render and validate of generated labs of 50, 200 and 500 sites against
netlab's `create` of the same shape, and netns deploy/verify/destroy of 50 and 100 sites.

The labs are the shapes a new user tries first: hub-and-spoke and full mesh, GRE tunnels, static
routing, one server per site, written out site by site and tunnel by tunnel (the explicit form;
docs/examples/hub200.yml is the same 200-site lab as a pattern). netlab gets the same shape: one
p2p link per tunnel and a stub LAN per site, VyOS devices, containerlab provider.

Linear scaling is checked here, not in timed tests: `per_site_ms` at 50, 200 and 500 sites and
their ratio. Static routing in a hub-and-spoke is quadratic by nature (every spoke routes every
other spoke's LAN); everything else is meant to grow with the sites.
Usage: python bench/scale.py [render|netns] prints the figures; `make bench` (bench/run.py, sections
scale-render and scale-netns) calls run_render and run_netns and keeps them in bench/results.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLABGEN = str(BIN / "clabgen")
NETLAB_VENV = ROOT / ".cache" / "bench-venv"
NETLAB = NETLAB_VENV / "bin" / "netlab"
# clabgen as a user installs it: a wheel of this checkout in its own venv, modules compiled at
# install time as pip does (the checkout's editable install, with PYTHONDONTWRITEBYTECODE=1 in this
# environment, compiles every module in every cold process; netlab's venv has its .pyc files).
WHEEL_VENV = ROOT / ".cache" / "bench-wheel-venv"
HUB_SIZES = (50, 200, 500)
MESH_SIZE = 30


# Lab names of the generated labs: never a checked-in lab's, nor one a person deploys by hand.
PREFIX = "bench-scale-"


def hub_intent(n: int, servers: int = 1, tunnel: str = "gre") -> str:
    """A hub and n-1 spokes, written out: site i has LAN 10.<1+i//250>.<i%250>.0/24."""
    lines = [f"name: {PREFIX}hub{n}", "underlay: {subnet: 172.16.0.0/22}", "sites:"]
    blocks = IPv4Network("172.31.0.0/16").subnets(new_prefix=30)
    for i in range(n):
        site, gw = ("hub", "gw-hub") if i == 0 else (f"s{i}", f"gw{i}")
        srv = ", ".join(f"{site}-h{k}" for k in range(servers))
        lines.append(f"  - {{name: {site}, lan: 10.{1 + i // 250}.{i % 250}.0/24, gateway: {gw}, servers: [{srv}]}}")
    lines.append("tunnels:")
    lines += [f"  - {{endpoints: [gw-hub, gw{i}], subnet: {next(blocks)}, type: {tunnel}}}" for i in range(1, n)]
    lines.append("routing: static")
    return "\n".join(lines) + "\n"


def mesh_intent(n: int, tunnel: str = "gre") -> str:
    lines = [f"name: {PREFIX}mesh{n}", "underlay: {subnet: 172.16.0.0/22}", "sites:"]
    blocks = IPv4Network("172.31.0.0/16").subnets(new_prefix=30)
    lines += [f"  - {{name: s{i}, lan: 10.1.{i}.0/24, gateway: gw{i}, servers: [h{i}]}}" for i in range(n)]
    lines.append("tunnels:")
    lines += [f"  - {{endpoints: [gw{i}, gw{j}], subnet: {next(blocks)}, type: {tunnel}}}"
              for i in range(n) for j in range(i + 1, n)]
    lines.append("routing: static")
    return "\n".join(lines) + "\n"


def netlab_topology(gateways: list[str], pairs: list[tuple[str, str]]) -> str:
    """The same shape for netlab: VyOS nodes, a stub LAN per site, one p2p link per tunnel. Its
    node cap (MAX_NODE_ID) and management pool are raised; /lib/modules, which its VyOS container
    binds, is not needed to create the files."""
    def ident(name: str) -> str:        # netlab's link strings split on '-'
        return name.replace("-", "")
    gateways = [ident(g) for g in gateways]
    pairs = [(ident(a), ident(b)) for a, b in pairs]
    lines = ["provider: clab", "defaults.device: vyos", "defaults.const.MAX_NODE_ID: 4000",
             "addressing.mgmt.ipv4: 172.20.0.0/16", "defaults.devices.vyos.clab.node.binds: null", "nodes:"]
    lines += [f"  {g}:" for g in gateways]
    lines.append("links:")
    lines += [f"- {g}" for g in gateways]
    lines += [f"- {a}-{b}" for a, b in pairs]
    return "\n".join(lines) + "\n"


def _wall(argv: list[str], cwd: Path | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=cwd)
    return time.perf_counter() - t0


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def ensure_netlab() -> str | None:
    """netlab (PyPI: networklab) in its own venv under .cache; None when it cannot be installed."""
    if NETLAB.exists():
        return None
    try:
        subprocess.run([sys.executable, "-m", "venv", str(NETLAB_VENV)], check=True, capture_output=True)
        subprocess.run([str(NETLAB_VENV / "bin" / "pip"), "install", "-q", "networklab"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"networklab could not be installed: {exc}"
    return None


def ensure_wheel() -> str | None:
    """A fresh wheel of this checkout in WHEEL_VENV, its dependencies taken from the running venv;
    the reason when it cannot be built."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    try:
        with tempfile.TemporaryDirectory() as wheels:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, str(ROOT)],
                           check=True, capture_output=True, timeout=600)
            shutil.rmtree(WHEEL_VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(WHEEL_VENV)], check=True, capture_output=True)
            target = next((WHEEL_VENV / "lib").glob("python3*/site-packages"))
            (target / "bench-deps.pth").write_text(site + "\n")
            subprocess.run([str(WHEEL_VENV / "bin" / "pip"), "install", "-q", "--no-deps", "--compile",
                            *map(str, Path(wheels).glob("clabgen-*.whl"))], check=True, capture_output=True)
    except (subprocess.SubprocessError, OSError, StopIteration) as exc:
        return f"the clabgen wheel could not be installed: {exc}"
    return None


def _netlab_create(topology: str, work: Path) -> float | str:
    work.mkdir(parents=True, exist_ok=True)
    (work / "topology.yml").write_text(topology)
    t0 = time.perf_counter()
    done = subprocess.run([str(NETLAB), "create", "topology.yml"], capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        return f"netlab create failed: {(done.stdout + done.stderr).strip().splitlines()[-1:]}"
    return round(seconds, 3)


def _in_process(intent: Path) -> dict[str, float]:
    """Where the time of one render goes (after a warm-up render in this process)."""
    sys.path.insert(0, str(ROOT / "src"))
    from clabgen import intent as intent_mod
    from clabgen import plan, render
    out: dict[str, float] = {}
    for _ in range(2):
        t0 = time.perf_counter()
        lab = intent_mod.read_lab(intent)
        t1 = time.perf_counter()
        p = plan.build(lab)
        t2 = time.perf_counter()
        files = render.render(p, intent.name)
        t3 = time.perf_counter()
        out = {"read_s": round(t1 - t0, 3), "plan_s": round(t2 - t1, 3), "render_s": round(t3 - t2, 3),
               "bytes": sum(len(f.data) for f in files), "files": len(files), "pings": len(p.pings),
               "routes": sum(len(n.routes) for n in p.nodes)}
    return out


def _one_lab(name: str, text: str, sites: int, work: Path, runs: int,
             netlab_shape: tuple[list[str], list[tuple[str, str]]] | None) -> dict[str, Any]:
    """Render and validate times of one lab, and netlab create of its shape. Other people's work on
    this machine comes and goes within seconds, so the tools take turns in each round (editable
    clabgen, clabgen wheel, netlab) and both the median and the best of the rounds are kept."""
    lab_dir = work / name
    lab_dir.mkdir(parents=True)
    intent = lab_dir / "intent.yml"
    intent.write_text(text)
    wheel_bin = WHEEL_VENV / "bin" / "clabgen"
    tools = {"render_process_s": CLABGEN, **({"render_process_wheel_s": str(wheel_bin)} if wheel_bin.exists() else {})}
    times: dict[str, list[float]] = {key: [] for key in tools}
    netlab_times: list[float] = []
    netlab_error = None
    for k in range(runs):
        for key, exe in tools.items():
            # every render into a new directory, all removed with `work` at the end: this machine's
            # ext4 has no journal, and such an ext4 skips the inodes freed in the last 30 s to 5 min
            # when it makes a file (a lookup each); removing one round's 600 files before the next
            # made the next round's files cost ~300 us each instead of ~15 (netlab's were never removed)
            times[key].append(_wall([exe, "render", str(intent), "--out", str(work / f"{name}-{key}-{k}")]))
        if netlab_shape is not None and netlab_error is None:
            got = _netlab_create(netlab_topology(*netlab_shape), work / f"{name}-netlab{k}")
            if isinstance(got, float):
                netlab_times.append(got)
            else:
                netlab_error = got
    inner = _in_process(intent)
    row: dict[str, Any] = {"sites": sites, "intent_lines": text.count("\n"), "runs": runs}
    for key, samples in times.items():
        row[key] = _median(samples)
        row[key[:-2] + "_best_s"] = round(min(samples), 3)
    row["validate_process_s"] = _median([_wall([CLABGEN, "validate", str(intent)]) for _ in range(runs)])
    if wheel_bin.exists():
        row["validate_process_wheel_s"] = _median([_wall([str(wheel_bin), "validate", str(intent)])
                                                   for _ in range(runs)])
    best = min(min(v) for v in times.values())
    row["render_per_site_ms"] = round(1000 * best / sites, 2)
    # static routing is quadratic (every spoke routes every other spoke's LAN): the time per route
    # is the figure that should stay flat
    row["render_per_route_us"] = round(1e6 * best / max(inner["routes"], 1), 1)
    row["in_process"] = inner
    if netlab_shape is not None:
        if netlab_error is not None and not netlab_times:
            row["netlab_create_s"] = netlab_error
        else:
            row["netlab_create_s"] = _median(netlab_times)
            row["netlab_create_best_s"] = round(min(netlab_times), 3)
            row["netlab_over_clabgen_median"] = round(row["netlab_create_s"] / row["render_process_s"], 1)
            row["netlab_over_clabgen_best"] = round(min(netlab_times) / row["render_process_best_s"], 1)
            if "render_process_wheel_s" in row:
                row["netlab_over_clabgen_wheel_median"] = round(row["netlab_create_s"] / row["render_process_wheel_s"], 1)
                row["netlab_over_clabgen_wheel_best"] = round(min(netlab_times) / row["render_process_wheel_best_s"], 1)
    return row


def run_render(netlab: bool = True) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="clabgen-scale-"))
    try:
        why = ensure_netlab() if netlab else "not asked for"
        wheel_why = ensure_wheel()
        labs: dict[str, Any] = {}
        for n in HUB_SIZES:
            gws = ["gw-hub"] + [f"gw{i}" for i in range(1, n)]
            shape = (gws, [("gw-hub", g) for g in gws[1:]]) if netlab and why is None and n == 200 else None
            labs[f"hub{n}"] = _one_lab(f"hub{n}", hub_intent(n), n, work, 3 if n < 500 else 2, shape)
        gws = [f"gw{i}" for i in range(MESH_SIZE)]
        pairs = [(gws[i], gws[j]) for i in range(MESH_SIZE) for j in range(i + 1, MESH_SIZE)]
        labs[f"mesh{MESH_SIZE}"] = _one_lab(f"mesh{MESH_SIZE}", mesh_intent(MESH_SIZE), MESH_SIZE, work, 3,
                                            (gws, pairs) if netlab and why is None else None)
        pattern = ROOT / "docs" / "examples" / "hub200.yml"
        labs["hub200-pattern"] = _one_lab("hub200-pattern", pattern.read_text(), 200, work, 3, None)
        hub30 = _write(work, "hub30", hub_intent(30))
        editable = [_wall([CLABGEN, "validate", str(hub30)]) for _ in range(5)]
        labs["hub30"] = {"validate_process_s": _median(editable), "validate_process_best_s": round(min(editable), 3),
                         "validate_target_s": 0.3}
        if wheel_why is None:
            wheel = [_wall([str(WHEEL_VENV / "bin" / "clabgen"), "validate", str(hub30)]) for _ in range(5)]
            labs["hub30"]["validate_process_wheel_s"] = _median(wheel)
            labs["hub30"]["validate_process_wheel_best_s"] = round(min(wheel), 3)
        per_site = [labs[f"hub{n}"]["render_per_site_ms"] for n in HUB_SIZES]
        per_route = [labs[f"hub{n}"]["render_per_route_us"] for n in HUB_SIZES]
        return {"labs": labs, "netlab": why or "networklab from PyPI, same shape, VyOS, containerlab provider",
                "wheel": wheel_why or f"clabgen wheel of this checkout in {WHEEL_VENV.relative_to(ROOT)}",
                "hub_per_route_us": dict(zip(map(str, HUB_SIZES), per_route)),
                "hub_per_site_ms": dict(zip(map(str, HUB_SIZES), per_site)),
                "per_site_growth_50_to_500": round(per_site[-1] / per_site[0], 2),
                "per_route_growth_200_to_500": round(per_route[-1] / per_route[1], 2),
                "target_ratio_vs_netlab": 10.0}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(work: Path, name: str, text: str) -> Path:
    path = work / name / "intent.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def _lab_processes(lab: str) -> dict[str, int]:
    """The lab's own processes (the dataplane, FRR; its state directory's pids): how many, their
    threads and resident memory."""
    out = {"processes": 0, "threads": 0, "rss_kb": 0}
    for pidfile in Path(f"/run/clabgen/{lab}").rglob("*.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
            status = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in ln)
        except (OSError, ValueError, IndexError):
            continue
        out["processes"] += 1
        out["threads"] += int(status.get("Threads", "0").strip() or 0)
        out["rss_kb"] += int(status.get("VmRSS", "0 kB").split()[0])
    return out


def _cycle(lab: Path, name: str, nodes: int) -> dict[str, Any]:
    before = _mem_available_kb()
    deploy = _wall([CLABGEN, "deploy", str(lab), "--runtime", "netns"])
    try:
        after = _mem_available_kb()
        procs = _lab_processes(name)
        t0 = time.perf_counter()
        verified = subprocess.run([CLABGEN, "verify", str(lab)], capture_output=True, text=True)
        verify = time.perf_counter() - t0
        summary = (verified.stdout.strip().splitlines() or verified.stderr.strip().splitlines() or [""])[-1]
    finally:
        destroy = _wall([CLABGEN, "destroy", str(lab)])
    return {"deploy_s": round(deploy, 3), "verify_s": round(verify, 3), "destroy_s": round(destroy, 3),
            "total_s": round(deploy + verify + destroy, 3), "checks": summary, "all_passed": verified.returncode == 0,
            "nodes": nodes,
            # machine-wide: other people's labs on this machine move it, hence the median of the runs
            "mem_available_drop_kb_per_node": round(max(before - after, 0) / nodes, 1),
            "lab_processes": procs, "lab_processes_rss_kb_per_node": round(procs["rss_kb"] / nodes, 1)}


def run_netns() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {"skipped": "the netns runtime needs root"}
    work = Path(tempfile.mkdtemp(prefix="clabgen-scale-netns-"))
    out: dict[str, Any] = {}
    try:
        for n, runs in ((50, 3), (100, 1)):
            intent = _write(work, f"hub{n}", hub_intent(n))
            subprocess.run([CLABGEN, "render", str(intent)], check=True, capture_output=True)
            nodes = len(json.loads((intent.parent / "expected.json").read_text())["nodes"])
            cycles = [_cycle(intent.parent, f"{PREFIX}hub{n}", nodes) for _ in range(runs)]
            best = sorted(cycles, key=lambda c: c["total_s"])[len(cycles) // 2]
            out[f"hub{n}"] = {**best, "runs": runs, "totals_s": [c["total_s"] for c in cycles],
                              "all_runs_passed": all(c["all_passed"] for c in cycles),
                              "mem_available_drop_kb_per_node": statistics.median(
                                  c["mem_available_drop_kb_per_node"] for c in cycles)}
        out["hub50"]["target_total_s"] = 20.0
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    which = sys.argv[1:] or ["render", "netns"]
    result = {}
    if "render" in which:
        result["scale_render"] = run_render()
    if "netns" in which:
        result["scale_netns"] = run_netns()
    print(json.dumps(result, indent=2))
