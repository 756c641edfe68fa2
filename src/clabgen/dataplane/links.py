"""Every netlink call the dataplane makes, in the namespace the calling thread is in."""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError


def configure_tun(ifname: str, address: str, mtu: int, txqlen: int) -> None:
    """Give a fresh TUN link the tunnel's address and MTU and bring it up, as `ip tunnel` would."""
    iface = ipaddress.IPv4Interface(address)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise RuntimeError(f"{ifname}: TUN link vanished before it could be configured")
        index = found[0]
        ipr.link("set", index=index, mtu=mtu, txqlen=txqlen)
        _no_ipv6_link_local(ipr, index)
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")


def _no_ipv6_link_local(ipr: IPRoute, index: int) -> None:
    """Like a kernel ipip link, carry no fe80:: address (and send no IPv6 chatter into the tunnel)."""
    mode_none = 1  # IN6_ADDR_GEN_MODE_NONE
    spec = {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", mode_none]]}]]}
    try:
        ipr.link("set", index=index, IFLA_AF_SPEC=spec)
    except NetlinkError:  # IPv6 disabled in this namespace: nothing to suppress
        pass


def delete_link(ifname: str) -> bool:
    """Remove a link if it is there; False when it was already gone."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
            return False
        return True


def link_exists(ifname: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def try_tunnel_link(link: dict[str, Any]) -> bool:
    """Ask the kernel for a tunnel link (the tunnel table's kernel_link); it loads the module
    itself if it has one. The caller's endpoints keep it from clashing with the fallback device
    (tunl0/gre0), which would answer EEXIST."""
    with IPRoute() as ipr:
        try:
            ipr.link("add", **link)
        except NetlinkError:
            return False
        ipr.link("del", index=ipr.link_lookup(ifname=link["ifname"])[0])
        return True
