"""expected.json: the plan's checkable facts, the only thing runners and verify read besides configs."""

from __future__ import annotations

import json
from typing import Any

from .plan import Plan

SCHEMA_VERSION = 1
# containerlab's management interface; its routes are not part of the lab's design.
MGMT_DEVS = ["eth0"]


def expected(plan: Plan, source: str) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for n in plan.nodes:
        entry: dict[str, Any] = {
            "role": n.role, "site": n.site, "platform": n.platform, "image": n.clab.image,
            "interfaces": [{"name": i.name, "role": i.role, "address": str(i.address) if i.address else None,
                            "mtu": i.mtu, "peer": i.peer} for i in n.interfaces],
            "routes": [{"dst": r.dst, "dev": r.dev, "via": r.via, "proto": r.proto, "scope": r.scope,
                        "src": r.src, "metric": r.metric, "text": r.text()} for r in n.routes],
        }
        if n.role == "gateway":
            entry["config"] = f"startup-conf/{n.name}.cfg"
        nodes[n.name] = entry
    return {
        "schema": SCHEMA_VERSION,
        "lab": plan.name,
        "source": source,
        "ignore_route_devs": MGMT_DEVS,
        "nodes": nodes,
        "links": [{"a": link.a, "b": link.b, "mtu": link.mtu, "segment": link.segment} for link in plan.links],
        "tunnels": [{"name": t.name, "type": t.type, "ip_proto": t.ip_proto, "overhead": t.overhead, "mtu": t.mtu,
                     "ends": [{"node": e.node, "ifname": e.ifname, "address": str(e.address), "local": str(e.local),
                               "remote": str(e.remote), "underlay_if": e.underlay_if} for e in t.ends]}
                    for t in plan.tunnels],
        "pings": [{"from": p.src, "to": p.dst, "address": str(p.address), "ttl": p.ttl, "kind": p.kind}
                  for p in plan.pings],
        "captures": [{"tunnel": c.tunnel, "node": c.node, "iface": c.iface, "tunnel_if": c.tunnel_if,
                      "lan_node": c.lan_node, "lan_if": c.lan_if, "ping_from": c.src, "ping_to": str(c.dst),
                      "outer": {"src": str(c.outer_src), "dst": str(c.outer_dst), "proto": c.ip_proto},
                      "inner": {"src": str(c.inner_src), "dst": str(c.dst)},
                      "lan_frame_len": c.lan_frame_len, "underlay_frame_len": c.underlay_frame_len}
                     for c in plan.captures],
        "warnings": list(plan.warnings),
    }


def expected_json(plan: Plan, source: str) -> str:
    return json.dumps(expected(plan, source), indent=2, sort_keys=False) + "\n"
