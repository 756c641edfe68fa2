"""`clabgen trace`: the path a packet takes, predicted from the lab contract and measured live.

The prediction follows the contract's expected routes (expected.json, or a fault scenario's tables
when `clabgen fault` took something down), not the intent: run commands read the contract only, so
a trace predicts what verify checks. Equal-cost routes branch. Each stop says where the packet
arrives, with which TTL, the route it matches, where it leaves and on which MTU, and where a tunnel
wraps it in which outer header.

The live trace sends ICMP echo requests with TTL 1, 2, ... from a raw socket in the source node's
network namespace (every runtime gives one; no traceroute needed in the node) and names the node
each answer comes from; `compare` lines the answers up with the prediction hop by hop.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from .contract import CryptoEndSpec, CryptoSpec, LabContract, NodeSpec, RouteSpec, TunnelEndSpec, TunnelSpec
from .errors import ClabgenError, Problem
from .tunnels import checksum

INITIAL_TTL = 64
MAX_PATHS = 16


@dataclass(frozen=True)
class Stop:
    """One node on the way: `hop` is the traceroute hop that answers from it (0: the sender)."""

    hop: int
    node: str
    in_if: str | None
    ttl: int                          # the packet's TTL as it arrives (the sender: as it is sent)
    route: str | None = None          # the route it matches, as `ip route` prints it
    out_if: str | None = None
    mtu: int | None = None            # MTU of the interface it leaves on
    encap: str | None = None          # the tunnel's outer header, when out_if is a tunnel
    note: str = ""                    # delivered, decapsulated, no route ...


@dataclass(frozen=True)
class Path:
    stops: tuple[Stop, ...]
    arrives: bool

    @property
    def routers(self) -> int:
        return max(s.hop for s in self.stops) - (1 if self.arrives else 0)

    @property
    def path_mtu(self) -> int | None:
        mtus = [s.mtu for s in self.stops if s.mtu is not None]
        return min(mtus) if mtus else None


@dataclass(frozen=True)
class Answer:
    """What came back for one TTL: time exceeded from a router, the echo reply, an error, nothing."""

    ttl: int
    kind: str                         # exceeded | reply | unreachable | none
    address: str | None = None
    node: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Compared:
    hop: int
    predicted: tuple[str, ...]        # nodes that may answer at this hop (equal-cost paths)
    expected_kind: str                # exceeded | reply
    answer: Answer | None
    ok: bool
    why: str = ""


@dataclass
class Endpoints:
    src: str
    dst: IPv4Address
    dst_name: str | None = None
    warnings: list[str] = field(default_factory=list)


# --- the contract as a network --------------------------------------------------------------------


def addresses(contract: LabContract) -> dict[IPv4Address, tuple[str, str]]:
    """Every address of the lab -> (node, interface): a router's answer is looked up here."""
    out: dict[IPv4Address, tuple[str, str]] = {}
    for n in contract.nodes:
        for i in n.interfaces:
            if i.address:
                out.setdefault(IPv4Interface(i.address).ip, (n.name, i.name))
        if n.router_id:
            out.setdefault(IPv4Address(n.router_id), (n.name, "lo"))
    return out


def endpoints(contract: LabContract, src: str, dst: str) -> Endpoints:
    """SRC a node; DST a node (its first address: a server's LAN address) or an IPv4 address."""
    names = [n.name for n in contract.nodes if n.role != "switch"]
    problems = []
    if src not in names:
        problems.append(Problem(None, f"no node {src!r} in lab {contract.lab}", f"nodes: {', '.join(names)}"))
    target: IPv4Address | None = None
    dst_name = None
    if dst in names:
        first = next((i.address for i in contract.node(dst).interfaces if i.address), None)
        if first is None:
            problems.append(Problem(None, f"node {dst!r} has no address"))
        else:
            target, dst_name = IPv4Interface(first).ip, dst
    else:
        try:
            target = IPv4Address(dst)
        except ValueError:
            problems.append(Problem(None, f"{dst!r} is neither a node of lab {contract.lab} nor an IPv4 address",
                                    f"nodes: {', '.join(names)}"))
    if problems:
        raise ClabgenError(*problems)
    assert target is not None
    owner = addresses(contract).get(target)
    return Endpoints(src, target, dst_name or (owner[0] if owner else None))


def _lookup(routes: tuple[RouteSpec, ...], dst: IPv4Address) -> RouteSpec | None:
    best: RouteSpec | None = None
    best_len = -1
    for r in routes:
        net = IPv4Network("0.0.0.0/0" if r.dst == "default" else r.dst)
        if dst in net and net.prefixlen > best_len:
            best, best_len = r, net.prefixlen
    return best


def _branches(r: RouteSpec) -> list[tuple[str | None, str]]:
    return [(h.via, h.dev) for h in r.nexthops] if r.nexthops else [(r.via, r.dev)]


Policy = tuple[CryptoSpec, tuple[IPv4Network, ...], tuple[IPv4Network, ...], CryptoEndSpec, CryptoEndSpec]


def _policies(contract: LabContract) -> dict[str, list[Policy]]:
    """Each gateway's policy-based IPsec tunnels: (spec, remote prefixes, local prefixes, its end, the peer's)."""
    out: dict[str, list[Policy]] = {}
    for spec in contract.crypto:
        for mine, peer in ((spec.ends[0], spec.ends[1]), (spec.ends[1], spec.ends[0])):
            if mine.remote_ts:
                out.setdefault(mine.node, []).append((spec, tuple(IPv4Network(n) for n in mine.remote_ts),
                                                      tuple(IPv4Network(n) for n in mine.local_ts), mine, peer))
    return out


def predict(contract: LabContract, src: str, dst: IPv4Address,
            routes: Mapping[str, tuple[RouteSpec, ...]] | None = None) -> list[Path]:
    """Every path the routes allow from src to dst (equal-cost routes branch), and the paths that
    end early (no route, or a tunnel whose outer packet cannot be carried) with why."""
    tables = dict(routes) if routes is not None else {n.name: n.routes for n in contract.nodes}
    nodes = {n.name: n for n in contract.nodes}
    owners = {a: o for a, o in addresses(contract).items() if nodes[o[0]].role != "switch"}
    ends: dict[tuple[str, str], tuple[TunnelSpec, TunnelEndSpec, TunnelEndSpec]] = {}
    for t in contract.tunnels:
        a, b = t.ends
        ends[(a.node, a.ifname)] = (t, a, b)
        ends[(b.node, b.ifname)] = (t, b, a)
    policies = _policies(contract)
    underlay = {(e.node, t.name): e.underlay_if for t in contract.tunnels for e in t.ends}
    tunnel_mtu = {t.name: t.mtu for t in contract.tunnels}
    first = next((i.address for i in nodes[src].interfaces if i.address), None)
    source = IPv4Interface(first).ip if first else None
    found: list[Path] = []

    def mtu_of(node: NodeSpec, ifname: str) -> int | None:
        return next((i.mtu for i in node.interfaces if i.name == ifname), None)

    def wire(node: NodeSpec, ifname: str) -> str:
        peer = next((i.peer for i in node.interfaces if i.name == ifname), None)
        return f"out {ifname}" + (f" to {peer}" if peer else "") + f", MTU {mtu_of(node, ifname)}"

    def walk(name: str, in_if: str | None, ttl: int, hop: int, stops: list[Stop], seen: frozenset[str]) -> None:
        if len(found) >= MAX_PATHS:
            return
        node = nodes[name]
        if owners.get(dst, ("", ""))[0] == name or (node.router_id and IPv4Address(node.router_id) == dst):
            found.append(Path((*stops, Stop(hop, name, in_if, ttl, note="delivered")), True))
            return
        if name in seen:
            found.append(Path((*stops, Stop(hop, name, in_if, ttl, note="routing loop")), False))
            return
        if hop and ttl <= 1:
            found.append(Path((*stops, Stop(hop, name, in_if, ttl, note="TTL runs out")), False))
            return
        out_ttl = ttl - 1 if hop else ttl
        policy = next((p for p in policies.get(name, ()) if any(dst in n for n in p[1])), None)
        if policy is not None:        # charon's routes in table 220 come before the main table
            spec, remote, local, here, there = policy
            encap = (f"ipsec policy {spec.tunnel}: ESP in UDP 4500 {here.local} > {here.remote}, "
                     f"{wire(node, underlay[(name, spec.tunnel)])}")
            stop = Stop(hop, name, in_if, ttl, f"{next(n for n in remote if dst in n)} (IPsec policy {spec.tunnel})",
                        None, tunnel_mtu.get(spec.tunnel), encap)
            if source is not None and not any(source in n for n in local):
                found.append(Path((*stops, stop), False))   # outside its local prefixes: dropped
                return
            walk(there.node, "(decrypted ESP)", out_ttl, hop + 1, [*stops, stop], seen | {name})
            return
        route = _lookup(tables.get(name, ()), dst)
        if route is None:
            found.append(Path((*stops, Stop(hop, name, in_if, ttl, note=f"no route to {dst}")), False))
            return
        for via, dev in _branches(route):
            tunnel = ends.get((name, dev))
            if tunnel is not None:
                t, mine, peer = tunnel
                outer = _lookup(tables.get(name, ()), IPv4Address(mine.remote))
                back = _lookup(tables.get(peer.node, ()), IPv4Address(mine.local))
                encap = (f"{t.type}: outer {mine.local} > {mine.remote} (IP protocol {t.ip_proto}, "
                         f"+{t.overhead} bytes), {wire(node, mine.underlay_if)}")
                stop = Stop(hop, name, in_if, ttl, route.text(), dev, mtu_of(node, dev), encap)
                if outer is None or back is None:
                    why = f"the outer packet {mine.local} > {mine.remote} has no route" + \
                        ("" if outer is None else f" back on {peer.node}")
                    found.append(Path((*stops, stop, Stop(hop + 1, peer.node, peer.ifname, out_ttl, note=why)), False))
                    continue
                walk(peer.node, f"{peer.ifname} (decap {peer.underlay_if})", out_ttl, hop + 1,
                     [*stops, stop], seen | {name})
                continue
            nxt = IPv4Address(via) if via else dst
            owner = owners.get(nxt)
            stop = Stop(hop, name, in_if, ttl, route.text(), dev, mtu_of(node, dev))
            if owner is None:
                found.append(Path((*stops, stop), False))
                continue
            walk(owner[0], owner[1], out_ttl, hop + 1, [*stops, stop], seen | {name})

    walk(src, None, INITIAL_TTL, 0, [], frozenset())
    return found


# --- live: TTL-stepped ICMP echo from the source node's namespace ---------------------------------


ICMP_ECHO, ICMP_REPLY, ICMP_UNREACH, ICMP_EXCEEDED = 8, 0, 3, 11
UNREACHABLE = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
               4: "fragmentation needed", 13: "administratively prohibited"}


def _echo(ident: int, seq: int) -> bytes:
    payload = b"clabgen-trace " + os.urandom(4).hex().encode()
    head = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, checksum(head + payload), ident, seq) + payload


def _parse(packet: bytes, ident: int, seq: int) -> tuple[str, str, int] | None:
    """(kind, source address, code) if the IP packet answers our echo (ident, seq)."""
    if len(packet) < 28 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0xF) * 4
    src = str(IPv4Address(packet[12:16]))
    icmp = packet[ihl:]
    kind, code = icmp[0], icmp[1]
    if kind == ICMP_REPLY:
        got = struct.unpack_from("!HH", icmp, 4)
        return ("reply", src, code) if got == (ident, seq) else None
    if kind in (ICMP_EXCEEDED, ICMP_UNREACH) and len(icmp) >= 36:
        inner = icmp[8:]
        inner_ihl = (inner[0] & 0xF) * 4
        quoted = inner[inner_ihl:inner_ihl + 8]
        if len(quoted) < 8 or quoted[0] != ICMP_ECHO or struct.unpack_from("!HH", quoted, 4) != (ident, seq):
            return None
        return ("exceeded" if kind == ICMP_EXCEEDED else "unreachable", src, code)
    return None


def probe(netns: str, dst: IPv4Address, max_hops: int, owners: Mapping[IPv4Address, tuple[str, str]],
          wait: float = 1.0, tries: int = 2) -> list[Answer]:
    """Echo requests with TTL 1, 2, ... until the reply, an error, or max_hops."""
    from . import netlink
    sock = netlink.in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    ident = int.from_bytes(os.urandom(2), "big") or 1
    answers: list[Answer] = []
    with sock:
        for ttl in range(1, max_hops + 1):
            answer = Answer(ttl, "none", detail="no answer")
            for attempt in range(tries):
                seq = ttl * 8 + attempt
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                sock.sendto(_echo(ident, seq), (str(dst), 0))
                got = _await(sock, ident, seq, wait)
                if got is not None:
                    kind, addr, code = got
                    owner = owners.get(IPv4Address(addr))
                    detail = {"exceeded": "time exceeded", "reply": "echo reply"}.get(kind) or \
                        UNREACHABLE.get(code, f"unreachable (code {code})")
                    answer = Answer(ttl, kind, addr, owner[0] if owner else None, detail)
                    break
            answers.append(answer)
            if answer.kind in ("reply", "unreachable"):
                break
    return answers


def _readable(sock: socket.socket, seconds: float) -> bool:
    """Whether sock has data within `seconds`. poll, not select: a big lab's verify or trace may hold more
    than 1024 descriptors (sockets in 200 namespaces), and select() cannot watch one numbered above that."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0, int(seconds * 1000))))


def _await(sock: socket.socket, ident: int, seq: int, wait: float) -> tuple[str, str, int] | None:
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not _readable(sock, left):
            return None
        got = _parse(sock.recv(65535), ident, seq)
        if got is not None:
            return got


def compare(paths: list[Path], answers: list[Answer]) -> list[Compared]:
    """Hop by hop: the node(s) the prediction lets answer, and what did. Equal-cost paths that the
    answers so far rule out are dropped as the comparison goes on."""
    alive = [p for p in paths if p.arrives] or paths
    out: list[Compared] = []
    last = max((max(s.hop for s in p.stops) for p in alive), default=0)
    for hop in range(1, max(last, len(answers)) + 1):
        answer = answers[hop - 1] if hop <= len(answers) else None
        here = [(p, _at(p, hop)) for p in alive]
        nodes = tuple(dict.fromkeys(s.node for _, s in here if s is not None))
        kinds = {_kind(p, s) for p, s in here if s is not None}
        kind = "reply" if kinds == {"reply"} else "exceeded" if kinds == {"exceeded"} else "/".join(sorted(kinds))
        if answer is None:
            if nodes:
                out.append(Compared(hop, nodes, kind, None, False, "the live trace stopped before this hop"))
            continue
        fits = [p for p, s in here if s is not None and s.node == answer.node and _kind(p, s) == answer.kind]
        if fits:
            alive = fits
            out.append(Compared(hop, nodes, kind, answer, True))
            continue
        if not nodes:
            why = f"predicted nothing here, but {_who(answer)} answered ({answer.detail})"
        elif answer.kind == "none":
            why = f"predicted {' or '.join(nodes)}, but nothing answered"
        elif answer.node in nodes:
            why = f"predicted {answer.node} to {'forward' if kind == 'exceeded' else 'answer'}, but it says: {answer.detail}"
        else:
            why = f"predicted {' or '.join(nodes)}, measured {_who(answer)} ({answer.detail})"
        out.append(Compared(hop, nodes, kind, answer, False, why))
        break
    return out


def _at(p: Path, hop: int) -> Stop | None:
    """The stop that answers a probe expiring at this hop (a tunnel's far end is the next stop)."""
    return next((s for s in p.stops if s.hop == hop), None)


def _kind(p: Path, s: Stop) -> str:
    if s.note == "delivered":
        return "reply"
    if s.note.startswith("no route"):
        return "unreachable"
    return "exceeded"


def _who(a: Answer) -> str:
    return f"{a.node} ({a.address})" if a.node else str(a.address)
