"""Check a running lab against expected.json: routes, tunnels, pings, encapsulation on the wire.

Works through the runtime interface only (node handles: exec and a network namespace), so the
same checks run on network namespaces, Docker and containerlab.
"""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from typing import Any
from xml.etree import ElementTree as ET

from . import netlink
from .labdir import RenderedLab
from .runtimes.base import NodeHandle, Runtime

ETH_P_ALL = 0x0003
TTL_RE = re.compile(r"ttl=(\d+)")


@dataclass(frozen=True)
class Check:
    group: str       # routes | tunnel | ping | capture
    node: str
    name: str
    ok: bool
    detail: str


def _route_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["dst"], r["dev"], r.get("via"), r["proto"], r["scope"], r.get("src"), r.get("metric"))


def check_routes(lab: RenderedLab, handles: dict[str, NodeHandle]) -> list[Check]:
    ignore = set(lab.expected.get("ignore_route_devs", []))
    out = []
    for name, node in lab.expected["nodes"].items():
        if not node["routes"] and node["role"] == "switch":
            continue
        actual = [r for r in netlink.routes(handles[name].netns()) if r.dev not in ignore]
        got = {_route_key(asdict(r)): r.text() for r in actual}
        want = {_route_key(r): r["text"] for r in node["routes"]}
        missing = [want[k] for k in want if k not in got]
        extra = [got[k] for k in got if k not in want]
        detail = "; ".join([f"missing: {m}" for m in missing] + [f"unexpected: {e}" for e in extra])
        out.append(Check("routes", name, f"{len(want)} routes", not missing and not extra,
                         detail or f"all {len(want)} routes as expected, none extra"))
    return out


def check_tunnels(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle]) -> list[Check]:
    out = []
    for t in lab.expected["tunnels"]:
        for end in t["ends"]:
            node, ifname = end["node"], end["ifname"]
            label = f"{ifname} {t['type']}"
            links = {link.ifname: link for link in netlink.links(handles[node].netns())}
            link = links.get(ifname)
            if link is None:
                out.append(Check("tunnel", node, label, False, f"{ifname} does not exist"))
                continue
            problems = []
            if not link.up:
                problems.append("down")
            if link.mtu != t["mtu"]:
                problems.append(f"MTU {link.mtu}, expected {t['mtu']}")
            if link.kind in ("ipip", "gre"):
                kind, local, remote = f"kernel {link.kind}", link.local, link.remote
                if link.kind != t["type"]:
                    problems.append(f"kernel tunnel of type {link.kind}, expected {t['type']}")
            else:
                us = next((u for u in runtime.tunnel_state(lab, node) if u.get("ifname") == ifname), None)
                if us is None:
                    problems.append(f"{ifname} is a {link.kind or 'plain'} device but no userspace tunnel serves it "
                                    "(dataplane down?)")
                    kind, local, remote = "userspace", None, None
                else:
                    kind, local, remote = f"userspace {us['mode']}", us.get("local"), us.get("remote")
                    if us["mode"] != t["type"]:
                        problems.append(f"userspace mode {us['mode']}, expected {t['type']}")
            if (local, remote) != (end["local"], end["remote"]) and local is not None:
                problems.append(f"endpoints {local} > {remote}, expected {end['local']} > {end['remote']}")
            detail = "; ".join(problems) or f"{kind}, up, MTU {link.mtu}, {local} > {remote}"
            out.append(Check("tunnel", node, label, not problems, detail))
    return out


def _ping(handle: NodeHandle, address: str, tries: int = 3) -> tuple[int | None, str]:
    last = ""
    for _ in range(tries):
        r = handle.exec(["ping", "-n", "-c", "1", "-W", "2", address], timeout=10)
        m = TTL_RE.search(r.stdout)
        if r.returncode == 0 and m:
            return int(m.group(1)), ""
        last = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
        last = last[0] if isinstance(last, list) else last
    return None, str(last)


def check_pings(lab: RenderedLab, handles: dict[str, NodeHandle]) -> list[Check]:
    pings = lab.expected["pings"]

    def one(p: dict[str, Any]) -> Check:
        ttl, err = _ping(handles[p["from"]], p["address"])
        name = f"ping {p['to']} ({p['address']})"
        if ttl is None:
            return Check("ping", p["from"], name, False, f"no reply: {err}")
        return Check("ping", p["from"], name, ttl == p["ttl"],
                     f"reply ttl={ttl}" + ("" if ttl == p["ttl"] else f", expected ttl={p['ttl']}"))

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(pings)))) as pool:
        return list(pool.map(one, pings))


def _open_capture(ns: str, ifname: str) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifname, 0))
        s.setblocking(False)
        return s
    return netlink.in_netns(ns, make)


def _ip(pkt: bytes) -> tuple[int, str, str, int, int, bytes] | None:
    """(proto, src, dst, ttl, header length, payload) of an IPv4 packet."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 0xF) * 4
    return pkt[9], str(IPv4Address(pkt[12:16])), str(IPv4Address(pkt[16:20])), pkt[8], ihl, pkt[ihl:]


def _echo(pkt: bytes, src: str, dst: str) -> tuple[int, bytes] | None:
    """(ttl, ICMP bytes) if pkt is our echo request src > dst."""
    ip = _ip(pkt)
    if ip and ip[0] == 1 and ip[1] == src and ip[2] == dst and ip[5][:1] == b"\x08":
        return ip[3], ip[5]
    return None


def _drain(sock: socket.socket) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(sock.recv(65535))
        except BlockingIOError:
            return frames


def check_capture(lab: RenderedLab, handles: dict[str, NodeHandle], cap: dict[str, Any]) -> Check:
    src, dst = cap["inner"]["src"], cap["inner"]["dst"]
    outer = cap["outer"]
    gre = outer["proto"] == 47
    socks = {
        "lan": _open_capture(handles[cap["lan_node"]].netns(), cap["lan_if"]),
        "tun": _open_capture(handles[cap["node"]].netns(), cap["tunnel_if"]),
        "underlay": _open_capture(handles[cap["node"]].netns(), cap["iface"]),
    }
    seen: dict[str, tuple[int, int, bytes]] = {}   # where -> (frame length, inner ttl, icmp bytes)
    underlay_outer: tuple[str, str, int] | None = None
    try:
        for _ in range(3):
            handles[cap["ping_from"]].exec(["ping", "-n", "-c", "1", "-W", "2", dst], timeout=10)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and len(seen) < 3:
                for where, s in socks.items():
                    for frame in _drain(s):
                        if where == "tun":
                            hit = _echo(frame, src, dst)
                            if hit and frame[0] >> 4 == 4:
                                seen.setdefault(where, (len(frame), *hit))
                            continue
                        if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                            continue
                        if where == "lan":
                            hit = _echo(frame[14:], src, dst)
                            if hit:
                                seen.setdefault(where, (len(frame), *hit))
                            continue
                        ip = _ip(frame[14:])
                        if not ip or ip[0] != outer["proto"]:
                            continue
                        inner = ip[5][4:] if gre else ip[5]
                        if gre and ip[5][:4] != b"\x00\x00\x08\x00":
                            continue
                        hit = _echo(inner, src, dst)
                        if hit:
                            seen.setdefault(where, (len(frame), *hit))
                            underlay_outer = (ip[1], ip[2], ip[0])
                time.sleep(0.01)
            if len(seen) == 3:
                break
    finally:
        for s in socks.values():
            s.close()
    problems = []
    for where in ("lan", "tun", "underlay"):
        if where not in seen:
            problems.append(f"no echo request {src} > {dst} seen on the {where} side")
    if problems:
        return Check("capture", cap["node"], f"{cap['iface']} {cap['tunnel']}", False, "; ".join(problems))
    lan_len, lan_ttl, lan_icmp = seen["lan"]
    tun_len, tun_ttl, tun_icmp = seen["tun"]
    und_len, und_ttl, und_icmp = seen["underlay"]
    if lan_len != cap["lan_frame_len"]:
        problems.append(f"LAN frame {lan_len} bytes, expected {cap['lan_frame_len']}")
    if und_len != cap["underlay_frame_len"]:
        problems.append(f"underlay frame {und_len} bytes, expected {cap['underlay_frame_len']}")
    if tun_len != lan_len - 14:
        problems.append(f"{cap['tunnel_if']} packet {tun_len} bytes: expected raw IP of {lan_len - 14} (no Ethernet header)")
    if underlay_outer != (outer["src"], outer["dst"], outer["proto"]):
        problems.append(f"outer header {underlay_outer}, expected {outer['src']} > {outer['dst']} proto {outer['proto']}")
    if not (lan_icmp == tun_icmp == und_icmp) or not (tun_ttl == und_ttl == lan_ttl - 1):
        problems.append("the inner packet changed on its way (beyond the gateway's TTL decrement)")
    detail = "; ".join(problems) or (
        f"LAN {lan_len} B {src} > {dst}; {cap['tunnel_if']} {tun_len} B raw IP; {cap['iface']} {und_len} B "
        f"outer {outer['src']} > {outer['dst']} proto {outer['proto']} around the unchanged inner packet")
    return Check("capture", cap["node"], f"{cap['iface']} {cap['tunnel']}", not problems, detail)


def verify(lab: RenderedLab, runtime: Runtime) -> list[Check]:
    handles = runtime.nodes(lab)
    checks = check_routes(lab, handles)
    checks += check_tunnels(lab, runtime, handles)
    checks += check_pings(lab, handles)
    for c in lab.expected.get("captures", []):
        try:
            checks.append(check_capture(lab, handles, c))
        except OSError as exc:   # e.g. the interface to capture on is gone
            checks.append(Check("capture", c["node"], f"{c['iface']} {c['tunnel']}", False,
                                f"cannot capture: {exc.strerror or exc}"))
    return checks


def junit(lab: RenderedLab, checks: list[Check]) -> bytes:
    suite = ET.Element("testsuite", name=f"clabgen-verify-{lab.name}", tests=str(len(checks)),
                       failures=str(sum(not c.ok for c in checks)))
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"{lab.name}.{c.group}", name=f"{c.node}: {c.name}")
        if not c.ok:
            ET.SubElement(case, "failure", message=c.detail).text = c.detail
        else:
            ET.SubElement(case, "system-out").text = c.detail
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
