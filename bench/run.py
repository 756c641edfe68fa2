"""`make bench`: render, netns/docker/containerlab lab cycles and the userspace tunnel, into bench/results.json.

Each section is measured in this run and replaces its previous figures in results.json (other
sections are kept), with the time it was measured. Sections whose prerequisites are missing
(no engine, no containerlab) record why they were skipped.
Usage: python bench/run.py [render netns tunnel bpf_tunnel docker containerlab convergence scale-render scale-netns
                           crypto]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
BIN = Path(sys.executable).parent
CLABGEN = str(BIN / "clabgen")
LAB = ROOT / "labs" / "ipip"
RUNS = 5


def _median(fn: Callable[[], float], runs: int = RUNS) -> dict[str, Any]:
    samples = [fn() for _ in range(runs)]
    return {"median_s": round(statistics.median(samples), 4), "min_s": round(min(samples), 4),
            "max_s": round(max(samples), 4), "runs": runs}


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def bench_render() -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="clabgen-bench-"))
    try:
        whole = _median(lambda: _timed([CLABGEN, "render", str(LAB / "intent.yml"), "--out", str(out / "o")]))
        sys.path.insert(0, str(ROOT / "src"))
        from clabgen import intent, plan, render

        def once() -> float:
            t0 = time.perf_counter()
            render.render(plan.build(intent.read_lab(LAB / "intent.yml")), "intent.yml", previous=LAB)
            return time.perf_counter() - t0
        once()  # imports and template compilation are paid by the process figure above
        inproc = _median(once, 50)
        imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import clabgen.cli"], capture_output=True,
                                 text=True, cwd=ROOT).stderr
        return {"what": "clabgen render labs/ipip/intent.yml", "process_cold": whole, "in_process": inproc,
                "imports_docker": " docker" in imports or "| docker" in imports}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _cycle(runtime: str, lab: Path, extra: list[str] | None = None) -> dict[str, Any]:
    deploy, verify, destroy = [], [], []
    for _ in range(RUNS):
        deploy.append(_timed([CLABGEN, "deploy", str(lab), "--runtime", runtime, *(extra or [])]))
        try:
            verify.append(_timed([CLABGEN, "verify", str(lab)]))
        finally:
            destroy.append(_timed([CLABGEN, "destroy", str(lab)]))
    med = {k: round(statistics.median(v), 4) for k, v in (("deploy_s", deploy), ("verify_s", verify),
                                                         ("destroy_s", destroy))}
    med["total_s"] = round(med["deploy_s"] + med["verify_s"] + med["destroy_s"], 4)
    med["runs"] = RUNS
    return med


def bench_netns() -> dict[str, Any]:
    result = _cycle("netns", LAB)
    result["target_total_s"] = 3.0
    subprocess.run([CLABGEN, "deploy", str(LAB), "--runtime", "netns"], check=True, capture_output=True)
    try:
        ping = subprocess.run(["ip", "netns", "exec", "clab-ipip-server1", "ping", "-n", "-q", "-c", "50", "-i", "0.01",
                               "10.1.8.10"], capture_output=True, text=True).stdout
        line = next((ln for ln in ping.splitlines() if "min/avg/max" in ln), "")
        if line:
            mn, avg, mx, _ = line.split("=")[1].split()[0].split("/")
            result["ping_rtt_ms"] = {"min": float(mn), "avg": float(avg), "max": float(mx), "count": 50}
    finally:
        subprocess.run([CLABGEN, "destroy", str(LAB)], check=True, capture_output=True)
    return result


def bench_tunnel() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_tunnel
    return bench_tunnel.run()


def bench_bpf_tunnel() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_tunnel
    return bench_tunnel.run_bpf()


def bench_convergence() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_convergence
    return bench_convergence.run()


def bench_crypto() -> dict[str, Any]:
    """WireGuard and GRE over IPsec (bench_crypto.py): bulk TCP vs plain forwarding, lab cycles."""
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_crypto
    return bench_crypto.run()


def _engine() -> bool:
    try:
        import docker
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def bench_docker() -> dict[str, Any]:
    if not _engine():
        return {"skipped": "no Docker engine answers (make docker-up)"}
    return {**_cycle("docker", LAB), "target_total_s": 8.0}


def bench_containerlab() -> dict[str, Any]:
    if not _engine():
        return {"skipped": "no Docker engine answers (make docker-up)"}
    if not (ROOT / "bin" / "containerlab").exists() and not shutil.which("containerlab"):
        return {"skipped": "containerlab is not built (make containerlab)"}
    return {**_cycle("containerlab", LAB), "target_total_s": 8.0}


def _scale() -> Any:
    sys.path.insert(0, str(ROOT / "bench"))
    import scale
    return scale


def bench_scale_render() -> dict[str, Any]:
    """Generated labs of 50/200/500 sites and the 30-site mesh against netlab create (bench/scale.py)."""
    return _scale().run_render()  # type: ignore[no-any-return]


def bench_scale_netns() -> dict[str, Any]:
    """Deploy/verify/destroy of the generated 50- and 100-site hub-and-spoke on netns (bench/scale.py)."""
    return _scale().run_netns()  # type: ignore[no-any-return]


SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {
    "render": bench_render, "netns": bench_netns, "tunnel": bench_tunnel, "bpf_tunnel": bench_bpf_tunnel,
    "docker": bench_docker, "containerlab": bench_containerlab, "convergence": bench_convergence,
    "scale-render": bench_scale_render, "scale-netns": bench_scale_netns, "crypto": bench_crypto,
}


def main(argv: list[str]) -> int:
    wanted = argv or list(SECTIONS)
    try:
        results = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        results = {}
    host = {"cpus": os.cpu_count(), "kernel": os.uname().release, "python": sys.version.split()[0]}
    for name in wanted:
        print(f"bench {name} ...", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            data = SECTIONS[name]()
        except Exception as exc:
            data = {"error": f"{type(exc).__name__}: {exc}"}
        data["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))
        data["host"] = host
        results[name] = data
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps({name: data}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
