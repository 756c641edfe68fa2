"""Verify dynamic routing: wait for convergence, then sessions and the daemons' own tables.

The routing daemons (FRR, as on VyOS) are asked through the runtime (`vtysh ... json`): OSPF
neighbours must be Full, BGP sessions Established, and every route the plan predicts must be the
daemon's selected one with the predicted OSPF cost or BGP AS path. Convergence is bounded: verify
polls sessions and kernel routes until they match the prediction or the wait is over, and says how
long it took.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .contract import AdjacencySpec, RouteSpec
from .errors import ClabgenError
from .labdir import RenderedLab
from .runtimes.base import NodeHandle, Runtime, vtysh
from .verify import Check, Expectation, route_differences, route_table

POLL = 0.25


def vtysh_json(runtime: Runtime, lab: RenderedLab, node: str, command: str) -> Any:
    """One `vtysh -c COMMAND json` answer of the node's FRR, None when it does not answer."""
    try:
        text = vtysh(runtime, lab, node, command)
        return json.loads(text) if text and text.strip() else None
    except (ValueError, OSError, ClabgenError):
        return None


def _ospf_up(runtime: Runtime, lab: RenderedLab, a: AdjacencySpec) -> tuple[bool, str]:
    data = vtysh_json(runtime, lab, a.node, "show ip ospf neighbor json")
    if data is None:
        return False, "ospfd does not answer"
    for entry in (data.get("neighbors") or {}).get(a.peer_id, ()):
        iface = str(entry.get("ifaceName", "")).split(":")[0]
        if iface == a.ifname:
            state = str(entry.get("nbrState") or entry.get("state") or "?")
            return state.startswith("Full"), f"{a.peer} ({a.peer_id}) on {a.ifname}: {state}"
    return False, f"no neighbour {a.peer_id} on {a.ifname}"


def _bgp_up(runtime: Runtime, lab: RenderedLab, a: AdjacencySpec) -> tuple[bool, str]:
    data = vtysh_json(runtime, lab, a.node, "show bgp summary json")
    if data is None:
        return False, "bgpd does not answer"
    peers = ((data.get("ipv4Unicast") or {}).get("peers") or {})
    peer = peers.get(a.peer_address)
    if peer is None:
        return False, f"no session with {a.peer_address}"
    state = str(peer.get("state", "?"))
    ok = state == "Established" and str(peer.get("remoteAs")) == a.peer_id
    return ok, f"{a.peer} ({a.peer_address}, AS {peer.get('remoteAs')}): {state}"


def adjacency_state(runtime: Runtime, lab: RenderedLab, a: AdjacencySpec) -> tuple[bool, str]:
    return _ospf_up(runtime, lab, a) if a.protocol == "ospf" else _bgp_up(runtime, lab, a)


def _expected_adjacencies(lab: RenderedLab, expect: Expectation) -> list[AdjacencySpec]:
    """Sessions over a tunnel that carries nothing are expected down."""
    tunnel_of = {(e.node, e.ifname): t.name for t in lab.contract.tunnels for e in t.ends}
    return [a for a in lab.contract.adjacencies if tunnel_of.get((a.node, a.ifname)) not in expect.down]


def routing_checks(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle], expect: Expectation,
                   wait: float) -> list[Check]:
    wanted = _expected_adjacencies(lab, expect)
    gone = [a for a in lab.contract.adjacencies if a not in wanted]
    t0 = time.monotonic()
    while True:
        states = {a: adjacency_state(runtime, lab, a) for a in wanted}
        lost = {a: adjacency_state(runtime, lab, a) for a in gone}
        tables_ok = all(not route_differences(expect.routes[n.name], route_table(lab, handles, n.name))
                        for n in lab.contract.nodes if n.role == "gateway")
        done = all(ok for ok, _ in states.values()) and not any(ok for ok, _ in lost.values()) and tables_ok
        rib: list[Check] = []
        if done:   # next hops can settle before the costs do: wait for the RIB too
            rib = rib_checks(lab, runtime, expect)
            done = all(c.ok for c in rib)
        spent = time.monotonic() - t0
        if done or spent > wait:
            break
        time.sleep(POLL)
    label = f"converged ({expect.scenario})" if expect.scenario else "converged"
    checks = [Check("routing", "-", label, done, f"sessions and routing tables as predicted after {spent:.1f}s"
                    if done else f"not converged after {spent:.1f}s (the checks below say what differs)")]
    for a, (ok, detail) in states.items():
        checks.append(Check(a.protocol, a.node, f"{a.protocol} {a.peer} on {a.ifname}", ok, detail))
    for a, (ok, detail) in lost.items():
        checks.append(Check(a.protocol, a.node, f"{a.protocol} {a.peer} on {a.ifname}", not ok,
                            f"down, as the fault predicts ({detail})" if not ok else f"still up: {detail}"))
    checks += rib or rib_checks(lab, runtime, expect)
    return checks


def rib_checks(lab: RenderedLab, runtime: Runtime, expect: Expectation) -> list[Check]:
    """The daemon's selected route per predicted prefix: protocol, next hops, and OSPF cost / BGP AS path."""
    out = []
    for node in lab.contract.nodes:
        if node.role != "gateway":
            continue
        learned = [r for r in expect.routes[node.name] if r.proto in ("ospf", "bgp")]
        if not learned:
            continue
        rib = vtysh_json(runtime, lab, node.name, "show ip route json") or {}
        bgp = vtysh_json(runtime, lab, node.name, "show ip bgp json") if any(r.proto == "bgp" for r in learned) else {}
        problems = [p for r in learned for p in _rib_problems(r, rib, bgp or {})]
        out.append(Check("rib", node.name, f"{len(learned)} learned routes in FRR", not problems,
                         "; ".join(problems) or "selected with the predicted protocol, next hops and "
                                                 + ("cost" if learned[0].proto == "ospf" else "AS path")))
    return out


def _rib_problems(r: RouteSpec, rib: dict[str, Any], bgp: dict[str, Any]) -> list[str]:
    entries = rib.get(r.dst) or rib.get(r.dst.removesuffix("/32")) or []
    chosen = next((e for e in entries if e.get("selected")), None)
    if chosen is None:
        return [f"{r.dst}: no selected route"]
    problems = []
    if chosen.get("protocol") != r.proto:
        problems.append(f"{r.dst}: {chosen.get('protocol')} route selected, expected {r.proto}")
    hops: set[tuple[str | None, str | None]] = {(h.get("ip"), h.get("interfaceName"))
                                                for h in chosen.get("nexthops", ()) if h.get("active", True)}
    want: set[tuple[str | None, str | None]] = {(h.via, h.dev) for h in r.nexthops} or {(r.via, r.dev)}
    if hops != want:
        problems.append(f"{r.dst}: next hops {sorted(map(str, hops))}, expected {sorted(map(str, want))}")
    if r.cost is not None and chosen.get("metric") != r.cost:
        problems.append(f"{r.dst}: OSPF cost {chosen.get('metric')}, expected {r.cost}")
    if r.as_path is not None:
        paths = (bgp.get("routes") or {}).get(r.dst) or []
        best = next((p for p in paths if p.get("bestpath")), None)
        got = tuple(int(x) for x in str((best or {}).get("path", "")).split() if x.isdigit())
        if best is None or got != r.as_path:
            problems.append(f"{r.dst}: AS path {' '.join(map(str, got)) or '-'}, expected "
                            f"{' '.join(map(str, r.as_path))}")
    return problems
