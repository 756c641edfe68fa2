"""A VyOS config's routing as the FRR configuration VyOS itself would give FRR.

VyOS runs FRR for every routing protocol (static routes too, through staticd). The lines below
are the ones vyos-1x's templates write for the nodes read by vyos_routing.py (1.4/1.5:
data/templates/frr/{ospfd,bgpd,bfdd,staticd}.frr.j2; 1.2: the vtysh commands of
vyatta-cfg-quagga's node.defs), one file per daemon, in the templates' order. Two rules:

- VyOS merges its defaults into the config before rendering; a default is written here only where
  it differs from FRR's own (`timers throttle spf 200 1000 10000`), since the others (hello 10,
  dead 40, `timers bgp 60 180`, metric-type 2, BFD 3 x 300 ms) leave FRR where it is anyway.
- 1.2 ran FRR 7.3, whose defaults (FRR_CFG_DEFAULT before 7.4) neither required eBGP policy nor
  checked `network` against the RIB; the lines that turn both off keep a 1.2 config's meaning on
  a newer FRR (the 1.4 template writes the same lines).

zebra gets `no zebra nexthop kernel enable` so routes reach the kernel as plain routes
(`10.1.8.0/24 via 1.1.1.2 dev tun0 proto ospf metric 20`, ECMP as one multipath route) rather
than nexthop-group ids, the form `ip route` and verify compare.
"""

from __future__ import annotations

from .routing_conf import BfdPeer, Bgp, BgpNeighbor, Ospf, OspfInterface, Redistribute
from .vyos import DeviceConfig, StaticRoute

HEADER = "frr defaults traditional\n"


def render(cfg: DeviceConfig) -> dict[str, str]:
    """daemon -> the text of its config file, for the daemons cfg.routing needs ({} if none)."""
    routing = cfg.routing
    if not routing.uses_frr:
        return {}
    out: dict[str, list[str]] = {"zebra": ["no zebra nexthop kernel enable", "!"],
                                 "staticd": static_routes(cfg.routes)}
    if "bfdd" in routing.daemons:
        out["bfdd"] = bfd(routing.bfd)
    if routing.ospf is not None:
        out["ospfd"] = ospf(routing.ospf)
    if routing.bgp is not None:
        out["bgpd"] = bgp(routing.bgp)
    return {d: HEADER + "".join(f"{line}\n" for line in lines) for d, lines in out.items()}


def from_text(text: str, file: str) -> dict[str, str]:
    """render() of a config.boot's text, daemons in start order."""
    from .vyos import parse
    cfg = parse(text, file)
    files = render(cfg)
    return {d: files[d] for d in cfg.routing.daemons if d in files}


def integrated(cfg: DeviceConfig) -> str:
    """All daemons' configs in start order: what `show running-config` would roughly list."""
    files = render(cfg)
    return "".join(f"! {d}\n{files[d].removeprefix(HEADER)}" for d in cfg.routing.daemons if d in files)


def static_routes(routes: list[StaticRoute]) -> list[str]:
    """staticd: every next-hop and interface of a route (FRR installs them as one ECMP route)."""
    lines = []
    for r in routes:
        lines += [f"ip route {r.prefix} {dev.value}" for dev in r.interfaces]
        lines += [f"ip route {r.prefix} {hop.value}" for hop in r.next_hops]
    return lines + ["!"]


def bfd(peers: tuple[BfdPeer, ...]) -> list[str]:
    """bfdd: the peers with timers; none (sessions only from `neighbor X bfd`, `ip ospf bfd`): empty."""
    if not peers:
        return []
    lines = ["bfd"]
    for p in peers:
        head = f" peer {p.address}" + (" multihop" if p.multihop else "") + \
            (f" local-address {p.source}" if p.source else "")
        lines += [head, f"  detect-multiplier {p.multiplier}", f"  receive-interval {p.receive}",
                  f"  transmit-interval {p.transmit}", "  shutdown" if p.shutdown else "  no shutdown", " exit",
                  " !"]
    return lines + ["exit", "!"]


def _interface(i: OspfInterface) -> list[str]:
    values = [("cost", i.cost), ("priority", i.priority), ("hello-interval", i.hello_interval),
              ("retransmit-interval", i.retransmit_interval), ("transmit-delay", i.transmit_delay),
              ("dead-interval", i.dead_interval)]
    lines = [f"interface {i.ifname}"] + [f" ip ospf {k} {v}" for k, v in values if v is not None]
    if i.bfd:
        lines.append(" ip ospf bfd")
    if i.mtu_ignore:
        lines.append(" ip ospf mtu-ignore")
    if i.network:
        lines.append(f" ip ospf network {i.network}")
    if i.passive is not None:
        lines.append(" ip ospf passive" if i.passive else " no ip ospf passive")
    return lines + ["exit", "!"]


def _redistribute(r: Redistribute) -> str:
    words = ["redistribute", r.protocol]
    if r.metric is not None:
        words += ["metric", str(r.metric)]
    if r.metric_type is not None:
        words += ["metric-type", str(r.metric_type)]
    return " ".join(words)


def ospf(o: Ospf) -> list[str]:
    lines = [line for i in o.interfaces for line in _interface(i)]
    lines.append("router ospf")
    lines += [f" network {prefix} area {area}" for area, prefix in o.networks]
    if o.log_adjacency_changes is not None:
        lines.append(" log-adjacency-changes" + (" detail" if o.log_adjacency_changes else ""))
    if o.router_id:
        lines.append(f" ospf router-id {o.router_id}")
    if o.passive_default:
        lines.append(" passive-interface default")
    lines += [f" passive-interface {name}" for name in o.passive]
    lines += [f" {_redistribute(r)}" for r in o.redistribute]
    if o.spf:
        lines.append(" timers throttle spf {} {} {}".format(*o.spf))
    return lines + ["exit", "!"]


def _neighbor(n: BgpNeighbor) -> list[str]:
    x = f" neighbor {n.address}"
    lines = [f"{x} remote-as {n.remote_as}"]
    if n.description:
        lines.append(f"{x} description {n.description}")
    if n.bfd:
        lines.append(f"{x} bfd")
        if n.bfd_check_control_plane:
            lines.append(f"{x} bfd check-control-plane-failure")
    if n.ebgp_multihop is not None:
        lines.append(f"{x} ebgp-multihop {n.ebgp_multihop}")
    if n.timers:
        lines.append(f"{x} timers {n.timers[0]} {n.timers[1]}")
    if n.update_source:
        lines.append(f"{x} update-source {n.update_source}")
    return lines + [" !"]


def _neighbor_af(b: Bgp, n: BgpNeighbor) -> list[str]:
    if not (n.ipv4_unicast or b.activate_all):
        return []
    lines = [" address-family ipv4 unicast"]
    if n.nexthop_self is not None:
        lines.append(f"  neighbor {n.address} next-hop-self" + (" force" if n.nexthop_self else ""))
    return lines + [f"  neighbor {n.address} activate", " exit-address-family", " !"]


def bgp(b: Bgp) -> list[str]:
    lines = [f"router bgp {b.asn}", " bgp ebgp-requires-policy" if b.ebgp_requires_policy else
             " no bgp ebgp-requires-policy"]
    if not b.default_ipv4_unicast:
        lines.append(" no bgp default ipv4-unicast")     # before any neighbor (vyos.dev T3463)
    lines.append(" bgp network import-check" if b.network_import_check else " no bgp network import-check")
    if b.networks or b.redistribute:
        lines += [" !", " address-family ipv4 unicast"] + [f"  {_redistribute(r)}" for r in b.redistribute] + \
                 [f"  network {p}" for p in b.networks] + [" exit-address-family"]
    lines.append(" !")
    for n in b.neighbors:
        lines += _neighbor(n) + _neighbor_af(b, n)
    if b.compare_routerid:
        lines.append(" bgp bestpath compare-routerid")
    if b.log_neighbor_changes:
        lines.append(" bgp log-neighbor-changes")
    if b.router_id:
        lines.append(f" bgp router-id {b.router_id}")
    if b.timers:
        lines.append(f" timers bgp {b.timers[0]} {b.timers[1]}")
    return lines + ["exit", "!"]


