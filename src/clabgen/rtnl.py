"""A minimal rtnetlink client for the requests a big deploy repeats thousands of times.

pyroute2 spends about a millisecond of Python per request (message classes, an asyncio loop);
a 50-site hub-and-spoke installs 2 450 static routes and 100 veth pairs, a 100-site one four times
as many routes. These few requests (add a route, an address, a veth pair or bridge, set a link's
state, MTU or master, look up an index) are packed here with `struct` and acknowledged one by one
on a plain netlink socket opened inside the node's namespace: tens of microseconds each, and the
kernel's refusal comes back as pyroute2's NetlinkError, so callers handle both alike.
Everything else (dumps, tunnels with their many attributes) stays with pyroute2.
"""

from __future__ import annotations

import os
import socket
import struct
from ipaddress import IPv4Address

from pyroute2.netlink.exceptions import NetlinkError

NLMSG = struct.Struct("=IHHII")          # length, type, flags, sequence, port
IFINFO = struct.Struct("=BxHiII")        # family, type, index, flags, change
IFADDR = struct.Struct("=BBBBi")         # family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")      # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTA = struct.Struct("=HH")
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
F_REQUEST, F_ACK, F_REPLACE, F_EXCL, F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 4, 5, 6
IFF_UP = 1
AF_INET = socket.AF_INET
RT_TABLE_MAIN, RTN_UNICAST, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 254, 1, 0, 253


def attr(kind: int, data: bytes) -> bytes:
    head = RTA.pack(RTA.size + len(data), kind)
    return head + data + b"\0" * (-(len(head) + len(data)) % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _ip(text: str) -> bytes:
    return IPv4Address(text).packed


class Rtnl:
    """One NETLINK_ROUTE socket, in the namespace it was opened in (see netlink.open_rtnl)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0
        self._index: dict[str, int] = {}

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> bytes | None:
        """Send one request and wait for its answer: the reply message (for a get) or None (an ack);
        a refusal raises NetlinkError with the kernel's errno."""
        self.seq += 1
        seq = self.seq
        self.sock.send(NLMSG.pack(NLMSG.size + len(body), kind, F_REQUEST | F_ACK | flags, seq, 0) + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + NLMSG.size <= len(data):
                length, mtype, _, mseq, _ = NLMSG.unpack_from(data, offset)
                if length < NLMSG.size:
                    break
                if mseq == seq:
                    if mtype == NLMSG_ERROR:
                        code = struct.unpack_from("=i", data, offset + NLMSG.size)[0]
                        if code:
                            raise NetlinkError(-code, os.strerror(-code))
                        return None
                    return data[offset:offset + length]
                offset += (length + 3) & ~3

    def index(self, ifname: str) -> int:
        """The interface's index (LookupError if it does not exist), remembered per socket."""
        known = self._index.get(ifname)
        if known is not None:
            return known
        try:
            reply = self.request(RTM_GETLINK, 0, IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(ifname)))
        except NetlinkError as exc:
            if exc.code == 19:      # ENODEV
                raise LookupError(f"no interface {ifname}") from None
            raise
        if reply is None:
            raise LookupError(f"no interface {ifname}")
        index = int(IFINFO.unpack_from(reply, NLMSG.size)[2])
        self._index[ifname] = index
        return index

    def set_link(self, ifname: str, *, up: bool | None = None, mtu: int | None = None,
                 master: str | None = None) -> None:
        attrs = b""
        if mtu is not None:
            attrs += attr(IFLA_MTU, _u32(mtu))
        if master is not None:
            attrs += attr(IFLA_MASTER, _u32(self.index(master)))
        flags, change = (0, 0) if up is None else (IFF_UP if up else 0, IFF_UP)
        self.request(RTM_NEWLINK, 0, IFINFO.pack(0, 0, self.index(ifname), flags, change) + attrs)

    def add_bridge(self, ifname: str, up: bool = True) -> None:
        info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, _name("bridge")))
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL,
                     IFINFO.pack(0, 0, 0, IFF_UP if up else 0, IFF_UP) + attr(IFLA_IFNAME, _name(ifname)) + info)

    def add_veth(self, ifname: str, peer: str, peer_ns_fd: int, mtu: int) -> None:
        """A veth pair with the MTU, this end up, the peer created straight in another namespace (down:
        the kernel refuses to bring a peer up while creating it; netlink.veth does it there)."""
        peer_msg = IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(peer)) + \
            attr(IFLA_MTU, _u32(mtu)) + attr(IFLA_NET_NS_FD, _u32(peer_ns_fd))
        info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, _name("veth")) +
                    attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL,
                     IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + attr(IFLA_IFNAME, _name(ifname)) +
                     attr(IFLA_MTU, _u32(mtu)) + info)

    def add_address(self, ifname: str, address: str, prefixlen: int, broadcast: str | None) -> None:
        attrs = attr(IFA_LOCAL, _ip(address)) + attr(IFA_ADDRESS, _ip(address))
        if broadcast is not None:
            attrs += attr(IFA_BROADCAST, _ip(broadcast))
        self.request(RTM_NEWADDR, F_CREATE | F_EXCL, IFADDR.pack(AF_INET, prefixlen, 0, 0, self.index(ifname)) + attrs)

    def replace_route(self, dst: str, *, via: str | None, dev: str | None, proto: int,
                      metric: int | None) -> None:
        """`ip route replace DST [via X] [dev IF] proto P [metric M]` in the main table."""
        if dst == "default":
            dst = "0.0.0.0/0"
        net, _, plen = dst.partition("/")
        length = int(plen or 32)
        attrs = attr(RTA_DST, _ip(net)) if length else b""
        if via is not None:
            attrs += attr(RTA_GATEWAY, _ip(via))
        if dev is not None:
            attrs += attr(RTA_OIF, _u32(self.index(dev)))
        if metric is not None:
            attrs += attr(RTA_PRIORITY, _u32(metric))
        scope = RT_SCOPE_LINK if via is None and dev is not None else RT_SCOPE_UNIVERSE
        self.request(RTM_NEWROUTE, F_CREATE | F_REPLACE,
                     RTMSG.pack(AF_INET, length, 0, 0, RT_TABLE_MAIN, proto, scope, RTN_UNICAST, 0) + attrs)
