"""Starter intents for `clabgen init`: a commented intent.yml of a common shape that renders as is.

Written as text, not dumped from data, so the comments sit beside what they explain and the same
options always give the same file. Addresses follow one scheme that fits every size clabgen
accepts here: LAN i is 10.1.<i+1>.0/24, tunnel k is the k-th /30 of 172.31.0.0/16, and the underlay
172.16.0.0/24 hands out .10 onwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from . import platforms, tunnels
from .errors import ClabgenError, Problem, Where
from .planned import CLAB_DEFAULT_MTU

PATTERNS = ("two-site", "hub-spoke", "mesh", "chain")
ROUTING = ("static", "ospf", "bgp")
# The plan follows every server pair's paths (and each single fault's): a 50-site chain plans in ~3 s,
# 200 sites take minutes. A full mesh of 40 has 780 tunnels.
MAX_SITES = 50
MAX_MESH = 40
DEFAULT_SITES = {"two-site": 2, "hub-spoke": 3, "mesh": 3, "chain": 3}
TUNNEL_POOL = IPv4Network("172.31.0.0/16")


@dataclass(frozen=True)
class Site:
    name: str
    gateway: str
    server: str
    lan: IPv4Network


def lab_name(directory: Path) -> str:
    """A valid lab name from the directory's name (lower case, other characters become -)."""
    raw = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:30].strip("-")
    return raw or "lab"


def _sites(pattern: str, n: int) -> list[Site]:
    def lan(i: int) -> IPv4Network:
        return IPv4Network(f"10.1.{i + 1}.0/24")
    if pattern == "hub-spoke":
        return [Site("hub", "gw-hub", "server-hub", lan(0))] + \
            [Site(f"spoke{i}", f"gw{i}", f"server{i}", lan(i)) for i in range(1, n)]
    return [Site(f"site{i + 1}", f"gw{i + 1}", f"server{i + 1}", lan(i)) for i in range(n)]


def _pairs(pattern: str, n: int) -> list[tuple[int, int]]:
    if pattern == "hub-spoke":
        return [(0, i) for i in range(1, n)]
    if pattern == "mesh":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    return [(i, i + 1) for i in range(n - 1)]   # two-site and chain


def check(pattern: str, sites: int | None, tunnel: str, routing: str, platform: str) -> int:
    """The number of sites, or one ClabgenError listing every bad option."""
    problems = []
    if pattern not in PATTERNS:
        problems.append(Problem(Where("--pattern"), f"unknown pattern {pattern!r}", f"valid: {', '.join(PATTERNS)}"))
    n = sites if sites is not None else DEFAULT_SITES.get(pattern, 2)
    if pattern == "two-site" and n != 2:
        problems.append(Problem(Where("--sites"), f"the two-site pattern has 2 sites, not {n}",
                                "use hub-spoke, mesh or chain for more"))
    most = MAX_MESH if pattern == "mesh" else MAX_SITES
    if not 2 <= n <= most:
        problems.append(Problem(Where("--sites"), f"{n} sites: the {pattern} pattern takes 2 to {most}"))
    if tunnel not in tunnels.TUNNEL_TYPES:
        problems.append(Problem(Where("--tunnel"), f"unknown tunnel type {tunnel!r}",
                                f"valid: {', '.join(tunnels.TUNNEL_TYPES)}"))
    if routing not in ROUTING:
        problems.append(Problem(Where("--routing"), f"unknown routing {routing!r}", f"valid: {', '.join(ROUTING)}"))
    if platform not in platforms.gateway_platforms():
        problems.append(Problem(Where("--platform"), f"unknown gateway platform {platform!r}",
                                f"valid: {', '.join(platforms.gateway_platforms())}"))
    if problems:
        raise ClabgenError(*problems)
    return n


def intent_text(name: str, pattern: str, sites: int | None = None, tunnel: str = "ipip", routing: str = "static",
                platform: str = "vyos-1.2") -> str:
    """The starter intent; raises ClabgenError for bad options."""
    n = check(pattern, sites, tunnel, routing, platform)
    site_list = _sites(pattern, n)
    pairs = _pairs(pattern, n)
    blocks = list(TUNNEL_POOL.subnets(new_prefix=30))
    shape = {"two-site": "two sites joined by one tunnel",
             "hub-spoke": f"a hub and {n - 1} spokes, one tunnel from each spoke to the hub; spoke-to-spoke "
                          "traffic crosses the hub",
             "mesh": f"{n} sites, a tunnel between every two of them ({len(pairs)} tunnels)",
             "chain": f"{n} sites in a row, each tunnelled to the next; the middle gateways are transit"}[pattern]
    ttype = tunnels.tunnel_type(tunnel)
    others = ", ".join(t for t in tunnels.TUNNEL_TYPES if t != tunnel)
    lines = [
        f"# Lab {name}: {shape}.",
        f"# Written by `clabgen init --pattern {pattern} --sites {n} --tunnel {tunnel} --routing {routing}`.",
        "# Edit it, then: clabgen validate intent.yml && clabgen render intent.yml && clabgen deploy .",
        "# Every field is described in docs/intent.md; what is not written here is derived by fixed rules.",
        f"name: {name}",
        "defaults:",
        _c(f"  gateway: {{platform: {platform}}}", f"gateway platforms: {', '.join(platforms.gateway_platforms())}"),
        "underlay:",
        _c("  subnet: 172.16.0.0/24", "the network between the gateways: eth2 gets .10, .11, ... in site order"),
        _c("sites:", "each: a LAN, its gateway (eth1 .1) and servers (net0 from .10)"),
    ]
    for s in site_list:
        lines.append(f"  - {{name: {s.name}, lan: {s.lan}, gateway: {s.gateway}, servers: [{s.server}]}}")
    lines.append(_c("tunnels:", f"{tunnel}: {ttype.overhead} bytes of outer header, MTU "
                                f"{CLAB_DEFAULT_MTU - ttype.overhead} on the default underlay; also: {others}"))
    for k, (i, j) in enumerate(pairs):
        lines.append(f"  - {{endpoints: [{site_list[i].gateway}, {site_list[j].gateway}], subnet: {blocks[k]}, "
                     f"type: {tunnel}}}")
    routing_note = {"static": "every gateway gets static routes along the fewest tunnels (ospf, bgp: run FRR)",
                    "ospf": "OSPF over every tunnel, cost 10 each (a mapping tunes it: docs/intent.md)",
                    "bgp": "eBGP over every tunnel, one AS per site from 65001 (docs/intent.md)"}[routing]
    lines.append(_c(f"routing: {routing}", routing_note))
    return "\n".join(lines) + "\n"


def _c(code: str, comment: str) -> str:
    """A line with its comment in column 33, as the checked-in intents align them."""
    return f"{code.ljust(31)} # {comment}"


def write(directory: Path, text: str) -> Path:
    """DIR/intent.yml, never over an existing one."""
    target = directory / "intent.yml"
    if target.exists() or (directory / "intent.yaml").exists():
        existing = target if target.exists() else directory / "intent.yaml"
        raise ClabgenError(Problem(Where(str(existing)), "an intent is already there; not overwriting",
                                   "remove it or pick another directory"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as fh:   # "x": a file created meanwhile is not overwritten
            fh.write(text)
    except FileExistsError:
        raise ClabgenError(Problem(Where(str(target)), "an intent is already there; not overwriting")) from None
    except OSError as exc:
        raise ClabgenError(Problem(Where(str(target)), f"cannot write: {exc.strerror or exc}")) from None
    return target
