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
    return _render_as(tmp_path, (LABS / lab / "intent.yml").read_text(), f"{tag}{uuid.uuid4().hex[:5]}-{lab}"[:30])


def _render_as(tmp_path: Path, intent: str, name: str) -> Path:
    out = tmp_path / name
    out.mkdir()
    path = out / "intent.yml"
    path.write_text(re.sub(r"^name: .*$", f"name: {name}", intent, count=1, flags=re.M))
    pipeline.render_intent(path)
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


def write_lab(tmp_path: Path, intent: str, tag: str = "t") -> Path:
    """Render an intent given as text (its `name:` line replaced by a unique name); the lab dir."""
    return _render_as(tmp_path, intent, f"{tag}{uuid.uuid4().hex[:6]}")


CHAIN3 = """\
# a - b - c: b is transit between a and c (no a-c tunnel)
name: chain
underlay: {subnet: 192.0.2.0/24}
sites:
  - {name: a, lan: 10.20.1.0/24, gateway: gwa, servers: [sa]}
  - {name: b, lan: 10.20.2.0/24, gateway: gwb, servers: [sb]}
  - {name: c, lan: 10.20.3.0/24, gateway: gwc, servers: [sc]}
tunnels:
  - {endpoints: [gwa, gwb], subnet: 10.255.1.0/30}
  - {endpoints: [gwb, gwc], subnet: 10.255.2.0/30, type: gre}
"""

DUALHUB = """\
# two hubs, each spoke tunnelled to both; spoke to spoke crosses a hub
name: dualhub
defaults: {gateway: {platform: vyos-1.4}}
underlay: {subnet: 198.51.100.0/24}
sites:
  - {name: h1, lan: 10.30.1.0/24, gateway: hub1}
  - {name: h2, lan: 10.30.2.0/24, gateway: hub2}
  - {name: s1, lan: 10.30.11.0/24, gateway: sp1, servers: [srv1]}
  - {name: s2, lan: 10.30.12.0/24, gateway: sp2, servers: [srv2]}
tunnels:
  - {endpoints: [sp1, hub1], subnet: 10.254.1.0/30}
  - {endpoints: [sp1, hub2], subnet: 10.254.2.0/30, type: gre}
  - {endpoints: [sp2, hub1], subnet: 10.254.3.0/30, type: gre}
  - {endpoints: [sp2, hub2], subnet: 10.254.4.0/30}
"""
