"""The two file descriptors behind one userspace tunnel: a TUN device and a raw IP socket."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from dataclasses import dataclass

from . import links
from .nsenter import entered
from .spec import TunnelSpec

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000
_TUNSETOFFLOAD = 0x400454D0
_TUN_F_CSUM = 0x01
_TUN_F_TSO4 = 0x02
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
# Sized to hold a full TCP receive window of 9 KB segments (tcp_rmem max 6 MB is ~700 of them),
# so a window-limited flow is never dropped inside the tunnel and TCP sees no loss.
SOCKET_BUFFER = 32 * 1024 * 1024
TUN_TXQLEN = 4096


@dataclass
class Endpoint:
    """Open descriptors of one tunnel; closing the TUN fd removes the link."""

    spec: TunnelSpec
    tun_fd: int
    sock: socket.socket
    vnet_hdr: bool = False

    def close(self) -> None:
        if self.tun_fd >= 0:
            os.close(self.tun_fd)
            self.tun_fd = -1
        self.sock.close()


def open_tun(ifname: str, vnet_hdr: bool = False) -> int:
    """A non-blocking layer-3 TUN fd without packet info, so reads give bare IP packets.

    vnet_hdr prefixes each packet with a virtio_net_hdr and switches on checksum and TSO4
    offload: the kernel then passes TCP up to 64 KB at a time in both directions and the C loops
    segment, checksum and coalesce themselves (what a NIC does), far cheaper than per packet.
    """
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    flags = _IFF_TUN | _IFF_NO_PI | (_IFF_VNET_HDR if vnet_hdr else 0)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH22x", ifname.encode(), flags))
        if vnet_hdr:
            fcntl.ioctl(fd, _TUNSETOFFLOAD, _TUN_F_CSUM | _TUN_F_TSO4)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_raw(proto: int, local: str, remote: str) -> socket.socket:
    """Raw socket for one protocol: bind/connect make the kernel hand us only remote -> local.

    IP_HDRINCL lets us write the outer header ourselves (TTL/TOS copied per packet as the kernel
    tunnel does); the kernel still fills in the ID and the checksum.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF), (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        sock.bind((local, 0))
        sock.connect((remote, 0))
    except OSError:
        sock.close()
        raise
    return sock


def open_endpoint(spec: TunnelSpec, vnet_hdr: bool = False) -> Endpoint:
    """Create both descriptors inside the tunnel's namespace and configure the link there."""
    with entered(spec.netns):
        if links.link_exists(spec.ifname):
            raise FileExistsError(f"{spec.ifname} already exists in netns {spec.netns or '(current)'}")
        tun_fd = open_tun(spec.ifname, vnet_hdr)
        try:
            sock = open_raw(spec.proto, spec.local, spec.remote)
        except OSError:
            os.close(tun_fd)
            raise
        endpoint = Endpoint(spec, tun_fd, sock, vnet_hdr)
        try:
            links.configure_tun(spec.ifname, spec.address, spec.mtu, TUN_TXQLEN)
        except Exception:
            endpoint.close()
            raise
    return endpoint
