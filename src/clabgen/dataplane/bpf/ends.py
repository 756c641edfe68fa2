"""Make BPF tunnel ends in a namespace: the devices first, then one program load serving them all.

Per tunnel end, a veth pair: the tunnel device (the tunnel's name; address, MTU and state come from
the caller, as for a kernel tunnel; what the stack sends into it is wrapped on its tc egress) and its
peer `<name>-bpf`, through which unwrapped packets arrive on the device. Why each setting:
- ARP off on the tunnel device: a point-to-point tunnel has no neighbours to ask (with ARP on,
  the next hop stays INCOMPLETE and everything is lost); frames leave with its own MAC.
- no tunnel segmentation offered by the tunnel device (tx-ipxip4/gre/udp_tnl-segmentation off): a
  large TCP packet that already crossed one of our tunnels keeps the kernel's encapsulation marks,
  and bpf_skb_adjust_room refuses to mark it twice; without the offer the kernel splits such a
  packet before the next tunnel wraps it (a hub forwarding spoke to spoke).
- forwarding on the peer: the program asks the FIB where the remote is as if the packet came in
  there (an input lookup: an output one would be bound to the device it names).
- no IPv6 link-local address on either: like a kernel ipip device, nothing but IPv4 enters.
Then attach(): load the object once for the namespace, one encap_cfg entry per end (by the tunnel
device's ifindex) and one decap_cfg entry (by remote, local, protocol), clabgen_encap on every tunnel
device's tc egress (and on its peer's ingress, for the large packets that egress lets through, see
tunnel.bpf.c; a second encap_cfg entry by the peer's ifindex), clabgen_decap on every other Ethernet
interface's ingress (the kernel's tunnels accept their
packets on any interface). The filters hold the programs, the programs their maps: nothing is
pinned, and all of it goes with the namespace.
"""

from __future__ import annotations

import os
import socket
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.ethtool import Ethtool

from ...tunnels import tunnel_type
from . import libbpf, source

ENCAP_PROG, DECAP_PROG = "clabgen_encap", "clabgen_decap"
ENCAP_MAP, DECAP_MAP = "encap_cfg", "decap_cfg"
# struct encap_cfg / decap_key / decap_cfg of tunnel.bpf.c, native byte order, explicit padding.
ENCAP_VALUE = struct.Struct("=4s4sIIBB2xIQQQ")  # local remote type peer_ifindex ttl tap id packets bytes dropped
TAP_OFFSET = 17                                 # the tap byte in ENCAP_VALUE
DECAP_KEY = struct.Struct("=4s4sI")             # remote local proto
DECAP_VALUE = struct.Struct("=III6s6xQQQ")      # type peer_ifindex tun_ifindex mac packets bytes dropped
ARPHRD_ETHER = 1
PEER_MTU = 65535     # the peer never limits what the tunnel device sends it
TUNNEL_GSO = ("tx-gre-segmentation", "tx-gre-csum-segmentation", "tx-ipxip4-segmentation",
              "tx-ipxip6-segmentation", "tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation")


class BpfSetupError(RuntimeError):
    """A BPF tunnel end could not be made (the message names it)."""


@dataclass(frozen=True)
class BpfTunnel:
    """One BPF tunnel end, as `ip tunnel add NAME mode MODE local L remote R ttl T` would describe it."""

    ifname: str
    mode: str
    local: str
    remote: str
    mtu: int
    ttl: int = 0   # 0: inherit the inner TTL


def peer_name(ifname: str) -> str:
    """`tun0-bpf`; a name too long for that gets a short stable one (interface names are <= 15)."""
    name = f"{ifname}-bpf"
    return name if len(name) <= 15 else f"bpf{zlib.crc32(ifname.encode()):08x}"


def _sysctl(key: str, value: str) -> None:
    """In the calling thread's namespace (what /proc/sys/net shows to this thread)."""
    Path("/proc/sys", *key.split(".")).write_text(value)


def _no_tunnel_segmentation(ifname: str) -> None:
    tool = Ethtool()
    try:
        features = tool.get_features(ifname)
        for name in TUNNEL_GSO:
            feature = features.features.get(name)
            if feature is not None and feature.enable and feature.available:
                feature.enable = False
        tool.set_features(ifname, features)
    finally:
        tool.close()


def create_device(t: BpfTunnel) -> None:
    """The veth pair of one tunnel end, in the calling thread's namespace; the tunnel device is left
    down, without address (the caller configures it as the config says)."""
    peer = peer_name(t.ifname)
    with IPRoute() as ipr:
        for name in (t.ifname, peer):
            if ipr.link_lookup(ifname=name):
                raise BpfSetupError(f"{name} already exists")
        ipr.link("add", ifname=t.ifname, kind="veth", mtu=t.mtu, peer={"ifname": peer, "mtu": PEER_MTU})
        tun, back = ipr.link_lookup(ifname=t.ifname)[0], ipr.link_lookup(ifname=peer)[0]
        ipr.link("set", index=tun, arp=False)
        for index in (tun, back):
            spec = {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", 1]]}]]}  # no fe80::
            try:
                ipr.link("set", index=index, IFLA_AF_SPEC=spec)
            except Exception:  # IPv6 off in this namespace: nothing to suppress
                pass
        ipr.link("set", index=back, state="up")
    _sysctl(f"net.ipv4.conf.{peer}.forwarding", "1")
    _no_tunnel_segmentation(t.ifname)


def _inet(addr: str) -> bytes:
    return socket.inet_aton(addr)


def attach(tunnels: Sequence[BpfTunnel], program: bytes) -> None:
    """Load the program once for the calling thread's namespace and wire every tunnel end to it."""
    if not tunnels:
        return
    seen: dict[bytes, str] = {}
    for t in tunnels:
        key = DECAP_KEY.pack(_inet(t.remote), _inet(t.local), tunnel_type(t.mode).ip_proto)
        if key in seen:
            raise BpfSetupError(f"{t.ifname}: same {t.mode} endpoints {t.local} > {t.remote} as {seen[key]}")
        seen[key] = t.ifname
    obj = libbpf.LoadedObject(program)
    try:
        encap_fd, decap_fd = obj.map_fd(ENCAP_MAP), obj.map_fd(DECAP_MAP)
        ends: set[str] = set()
        with IPRoute() as ipr:
            links = {link.get_attr("IFLA_IFNAME"): link for link in ipr.get_links()}
            for t in tunnels:
                index = source.type_index(t.mode)
                if index is None:
                    raise BpfSetupError(f"{t.ifname}: the BPF tunnel does not carry {t.mode}")
                peer = peer_name(t.ifname)
                tun, back = links[t.ifname], links[peer]
                mac = bytes.fromhex(tun.get_attr("IFLA_ADDRESS").replace(":", ""))
                first_id = int.from_bytes(os.urandom(2), "big") or 1
                value = ENCAP_VALUE.pack(_inet(t.local), _inet(t.remote), index, back["index"], t.ttl, 0, first_id,
                                         0, 0, 0)
                for key in (tun["index"], back["index"]):   # the device's egress; its peer's ingress
                    libbpf.update(encap_fd, struct.pack("=I", key), value)
                libbpf.update(decap_fd, DECAP_KEY.pack(_inet(t.remote), _inet(t.local), tunnel_type(t.mode).ip_proto),
                              DECAP_VALUE.pack(index, back["index"], tun["index"], mac, 0, 0, 0))
                libbpf.attach(tun["index"], obj.prog_fd(ENCAP_PROG), egress=True)
                libbpf.attach(back["index"], obj.prog_fd(ENCAP_PROG))
                ends |= {t.ifname, peer}
            for name, link in links.items():
                if name not in ends and link["ifi_type"] == ARPHRD_ETHER:
                    libbpf.attach(link["index"], obj.prog_fd(DECAP_PROG))
    finally:
        obj.close()
