"""Test helpers: render a checked-in lab under a unique name, snapshot the host, look for residue."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

from clabgen import pipeline

from .conftest import LABS


def unique_lab(tmp_path: Path, lab: str, tag: str = "t") -> Path:
    """Render labs/<lab>/intent.yml as `<tag><hex>-<lab>` into tmp_path; returns the lab dir."""
    name = f"{tag}{uuid.uuid4().hex[:5]}-{lab}"[:30]
    text = (LABS / lab / "intent.yml").read_text()
    out = tmp_path / name
    out.mkdir()
    intent = out / "intent.yml"
    intent.write_text(re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M))
    pipeline.render_intent(intent)
    return out


def lab_name(lab_dir: Path) -> str:
    return json.loads((lab_dir / "expected.json").read_text())["lab"]


def residue(name: str) -> list[str]:
    """Anything a lab named `name` could leave behind: namespaces, state, processes."""
    left = [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(f"clab-{name}-")] \
        if os.path.isdir("/run/netns") else []
    if os.path.exists(f"/run/clabgen/{name}"):
        left.append(f"/run/clabgen/{name}")
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    left += [f"process {line.strip()}" for line in ps.splitlines() if f"/run/clabgen/{name}/" in line]
    return left


def host_snapshot() -> dict[str, str]:
    """The host namespace's network state, to prove a lab never touches it."""
    def run(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True).stdout

    def strip_stats(text: str) -> str:
        data = json.loads(text or "[]")
        for link in data:
            for k in ("stats64", "stats", "operstate"):
                link.pop(k, None)
        return json.dumps(data, sort_keys=True)

    return {
        "links": strip_stats(run("ip", "-j", "link", "show")),
        "addrs": run("ip", "-j", "addr", "show"),
        "routes": run("ip", "-j", "route", "show", "table", "all"),
        "rules": run("ip", "-j", "rule", "show"),
        "forwarding": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
        "neigh-count": str(len(json.loads(run("ip", "-j", "neigh", "show") or "[]"))),
    }
