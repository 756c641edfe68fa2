"""Convergence of labs/ospf-dualhub on netns: cut the active tunnel under a 10 ms ping, time the outage.

host1 (branch1) pings host2 (branch2) every 10 ms; their traffic crosses hub1 (cost 10) rather
than hub2 (cost 50). The cut takes spoke1's hub1 tunnel down (`clabgen fault`, both ends: OSPF sees
the interface go) or, in the underlay variant, hub1's underlay link (its tunnels stay up but carry
nothing: OSPF waits for its dead interval, or for BFD's 3 x 300 ms); traffic moves to hub2. The figure is the time from the cut to the
first reply after the replies stopped (0 when none were lost); median of ROUNDS, the fault undone
and the lab re-converged between rounds.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from clabgen import labops, pipeline  # noqa: E402 (after the sys.path line: runs from a checkout)
from clabgen.runtimes import state  # noqa: E402

ROUNDS = 5
REPLY = re.compile(r"^\[(\d+\.\d+)\].*icmp_seq=(\d+)")


def _lab(tmp: Path, name: str, extra: str = "") -> Path:
    text = (ROOT / "labs" / "ospf-dualhub" / "intent.yml").read_text()
    text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M)
    if extra:
        text = text.replace("  type: ospf\n", f"  type: ospf\n{extra}")
    lab = tmp / name
    lab.mkdir()
    (lab / "intent.yml").write_text(text)
    pipeline.render_intent(lab / "intent.yml")
    return lab


def _converged(lab: Path) -> float:
    _, checks, seconds = labops.verify(lab, wait=60)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise RuntimeError(f"{lab.name} does not verify: {failed[0]}")
    return seconds


def _outage(lab: Path, name: str, target: str) -> float:
    ping = subprocess.Popen(["ip", "netns", "exec", f"clab-{name}-host1", "ping", "-D", "-n", "-i", "0.01",
                             "-W", "1", "10.1.2.10"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        cut = time.time()
        labops.fault(lab, "down", target)
        time.sleep(8)
    finally:
        ping.terminate()
        out, _ = ping.communicate()
    replies = [(float(m[1]), int(m[2])) for m in (REPLY.match(line) for line in out.splitlines()) if m]
    before = [s for t, s in replies if t < cut]
    if not before or not any(t >= cut for t, _ in replies):
        raise RuntimeError("no replies around the cut")
    answered = {s for _, s in replies}
    last = max(s for _, s in replies)
    lost = next((s for s in range(max(before) + 1, last) if s not in answered), None)
    if lost is None:
        return 0.0                     # not one request went unanswered
    resumed = min((t for t, s in replies if s > lost and t >= cut), default=None)
    if resumed is None:
        raise RuntimeError("the replies never came back")
    return round(resumed - cut, 3)


def _rounds(lab: Path, name: str, target: str) -> dict[str, Any]:
    samples = []
    for _ in range(ROUNDS):
        samples.append(_outage(lab, name, target))
        labops.fault(lab, "up", target)
        _converged(lab)
    return {"median_s": statistics.median(samples), "samples_s": samples}


def _memory(name: str) -> dict[str, Any]:
    """RSS of the FRR daemons per gateway namespace (kB), from /proc."""
    out: dict[str, int] = {}
    for gw in ("hub1", "hub2", "spoke1", "spoke2", "spoke3"):
        pids = subprocess.run(["ip", "netns", "pids", f"clab-{name}-{gw}"], capture_output=True, text=True).stdout.split()
        total = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            total += int(m.group(1)) if m else 0
        out[gw] = total
    return {"rss_kb_per_gateway": out, "median_rss_mb": round(statistics.median(out.values()) / 1024, 1)}


def run() -> dict[str, Any]:
    if shutil.which("/usr/lib/frr/zebra") is None:
        return {"skipped": "FRR is not installed (make deps)"}
    tmp = Path(tempfile.mkdtemp(prefix="clabgen-conv-"))
    result: dict[str, Any] = {"lab": "labs/ospf-dualhub (5 gateways, 6 tunnels, OSPF, netns)", "rounds": ROUNDS,
                              "goal_s": 3.0}
    try:
        for key, extra, target in (("tunnel_down", "", "s1-hub1"),
                                   ("underlay_down", "", "hub1:underlay"),
                                   ("underlay_down_bfd", "  bfd: true\n", "hub1:underlay")):
            name = f"bconv-{key.replace('_', '')}"[:20]
            lab = _lab(tmp, name, extra)
            t0 = time.monotonic()
            labops.deploy(lab, "netns")
            try:
                result.setdefault("first_convergence_s", round(time.monotonic() - t0 + _converged(lab), 2))
                if key == "tunnel_down":
                    result["memory"] = _memory(name)
                result[key] = _rounds(lab, name, target)
            finally:
                labops.destroy(lab)
                state.remove(name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
