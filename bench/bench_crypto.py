"""Encrypted tunnels: bulk TCP through labs/wireguard, labs/ipsec-gre and labs/ipsec-policy vs plain forwarding in
the same lab, and each lab's deploy/verify/destroy time, on the netns runtime.

Each lab is rendered under a unique name (prefix $CLABGEN_BENCH_PREFIX, default "bench") into a
temporary directory, so concurrent labs on the machine are never touched. Throughput: site1's
first server -> site2's first server with iperf3 (5 s), through the tunnel as deployed, then with
"plain forwarding": two policy rules (pref 100) on the two gateways send the servers' traffic
straight over the underlay, same nodes, same daemons running; the rules go again. Per round both
are measured back to back; figures are the median round. Retransmits come from the sender's own
TCP counters (its namespace's /proc/net/snmp). `python bench/bench_crypto.py` prints the JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLABGEN = str(Path(sys.executable).parent / "clabgen")
LABS = ("wireguard", "ipsec-gre", "ipsec-policy")
SECONDS = 5
ROUNDS = 3
CYCLES = 3
PREF = "100"
TABLE = "100"


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = _run(argv, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} failed: {(done.stdout + done.stderr)[-600:]}")
    return time.perf_counter() - t0


def render(lab: str, out: Path) -> tuple[Path, str]:
    """labs/<lab>/intent.yml rendered as <prefix><hex>-<lab> under out; (lab dir, lab name)."""
    name = f"{os.environ.get('CLABGEN_BENCH_PREFIX', 'bench')}{uuid.uuid4().hex[:4]}-{lab}"[:30]
    d = out / name
    d.mkdir(parents=True)
    text = (ROOT / "labs" / lab / "intent.yml").read_text()
    (d / "intent.yml").write_text(re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M))
    _timed([CLABGEN, "render", str(d / "intent.yml")])
    return d, name


def cycles(lab: Path, runs: int = CYCLES) -> dict[str, Any]:
    deploy, verify, destroy = [], [], []
    for _ in range(runs):
        deploy.append(_timed([CLABGEN, "deploy", str(lab), "--runtime", "netns"]))
        try:
            verify.append(_timed([CLABGEN, "verify", str(lab)]))
        finally:
            destroy.append(_timed([CLABGEN, "destroy", str(lab)]))
    med = {k: round(statistics.median(v), 3) for k, v in (("deploy_s", deploy), ("verify_s", verify),
                                                        ("destroy_s", destroy))}
    med["total_s"] = round(sum(med.values()), 3)
    med["runs"] = runs
    med["samples"] = {"deploy_s": [round(x, 3) for x in deploy], "verify_s": [round(x, 3) for x in verify],
                      "destroy_s": [round(x, 3) for x in destroy]}
    return med


def _ends(lab: Path) -> dict[str, Any]:
    """site1's and site2's gateway and first server: names, addresses, underlay."""
    nodes = json.loads((lab / "expected.json").read_text())["nodes"]
    sites = sorted({n["site"] for n in nodes if n.get("site")})[:2]
    out: dict[str, Any] = {}
    for tag, site in zip(("a", "b"), sites):
        gw = next(n for n in nodes if n["site"] == site and n["role"] == "gateway")
        srv = next(n for n in nodes if n["site"] == site and n["role"] == "server")
        under = next(i for i in gw["interfaces"] if i["role"] == "underlay")
        out[tag] = {"gw": gw["name"], "server": srv["name"], "addr": srv["interfaces"][0]["address"].split("/")[0],
                    "underlay": under["address"].split("/")[0], "underlay_if": under["name"]}
    return out


def _ns(name: str, node: str) -> str:
    return f"clab-{name}-{node}"


def _tcp(ns: str) -> dict[str, int]:
    lines = [ln.split() for ln in _run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]).stdout.splitlines()
             if ln.startswith("Tcp:")]
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:]) if v.lstrip("-").isdigit()}


def iperf(name: str, e: dict[str, Any]) -> dict[str, Any]:
    src, dst = _ns(name, e["a"]["server"]), _ns(name, e["b"]["server"])
    server = subprocess.Popen(["ip", "netns", "exec", dst, "iperf3", "-s", "-1", "-B", e["b"]["addr"], "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        before = _tcp(src)
        proc = _run(["ip", "netns", "exec", src, "iperf3", "-c", e["b"]["addr"], "-p", "5201", "-t", str(SECONDS),
                     "-J"], timeout=SECONDS + 30)
        after = _tcp(src)
    finally:
        server.kill()
        server.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"iperf3 failed: {proc.stdout[-400:]} {proc.stderr[-400:]}")
    end = json.loads(proc.stdout)["end"]
    segs = after["OutSegs"] - before["OutSegs"]
    retrans = after["RetransSegs"] - before["RetransSegs"]
    return {"gbit_s": round(end["sum_received"]["bits_per_second"] / 1e9, 3), "retransmits": retrans,
            "segments": segs, "retrans_pct": round(100.0 * retrans / max(segs, 1), 4)}


def _plain(name: str, e: dict[str, Any], on: bool) -> None:
    """Policy rules on both gateways: the two servers' traffic bypasses the tunnel (or not)."""
    for me, other in (("a", "b"), ("b", "a")):
        ns = _ns(name, e[me]["gw"])
        rule = ["from", e[me]["addr"], "to", e[other]["addr"], "pref", PREF, "lookup", TABLE]
        if on:
            _run(["ip", "-n", ns, "route", "replace", f"{e[other]['addr']}/32", "via", e[other]["underlay"],
                  "dev", e[me]["underlay_if"], "table", TABLE])
            _run(["ip", "-n", ns, "rule", "add", *rule])
        else:
            _run(["ip", "-n", ns, "rule", "del", *rule])
            _run(["ip", "-n", ns, "route", "flush", "table", TABLE])


def _median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(samples, key=lambda r: r["gbit_s"])
    return {**ordered[len(ordered) // 2], "rounds_gbit_s": [r["gbit_s"] for r in samples],
            "rounds_retrans_pct": [r["retrans_pct"] for r in samples]}


def throughput(lab: Path, name: str, rounds: int = ROUNDS) -> dict[str, Any]:
    e = _ends(lab)
    _timed([CLABGEN, "deploy", str(lab), "--runtime", "netns"])
    plain: list[dict[str, Any]] = []
    tunnel: list[dict[str, Any]] = []
    try:
        _timed([CLABGEN, "verify", str(lab)])          # handshakes done, routes converged
        for _ in range(rounds):
            _plain(name, e, True)
            try:
                plain.append(iperf(name, e))
            finally:
                _plain(name, e, False)
            tunnel.append(iperf(name, e))
    finally:
        _timed([CLABGEN, "destroy", str(lab)])
    ratios = sorted(t["gbit_s"] / p["gbit_s"] for t, p in zip(tunnel, plain))
    return {"from": f"{e['a']['server']} {e['a']['addr']}", "to": f"{e['b']['server']} {e['b']['addr']}",
            "plain": _median(plain), "tunnel": _median(tunnel), "ratio": round(ratios[len(ratios) // 2], 3),
            "ratio_rounds": [round(r, 3) for r in ratios], "target_retrans_pct": 0.1}


def run(labs: tuple[str, ...] = LABS) -> dict[str, Any]:
    if not shutil.which("iperf3"):
        return {"skipped": "iperf3 is missing (make deps)"}
    out = Path(tempfile.mkdtemp(prefix="clabgen-bench-crypto-"))
    result: dict[str, Any] = {"seconds": SECONDS, "rounds": ROUNDS, "loadavg_1m": round(os.getloadavg()[0], 2)}
    try:
        for lab in labs:
            d, name = render(lab, out)
            deployed = _run([CLABGEN, "deploy", str(d), "--runtime", "netns"], timeout=300)
            how = [ln.strip() for ln in deployed.stderr.splitlines() if "tunnels:" in ln][:1]
            _run([CLABGEN, "destroy", str(d)])
            if deployed.returncode != 0:
                result[lab] = {"error": deployed.stderr.strip()[-400:]}
                continue
            result[lab] = {"lab": name, "dataplane": how, "cycle": cycles(d), "tcp": throughput(d, name)}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(json.dumps(run(tuple(sys.argv[1:]) or LABS), indent=2))
