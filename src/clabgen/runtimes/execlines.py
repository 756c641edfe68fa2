"""A node's `exec` lines on the netns runtime: the plan's own `ip` commands through netlink.

containerlab runs each exec line in the container; the netns runtime used to run it with
`ip netns exec` (a process each: a 50-site lab's servers and underlay switch ran 200 of them).
The lines the plan writes itself (a server's address and default route, a switch's bridge and its
ports) are applied here with one netlink request each, meaning exactly what `ip` would do; any
other line (a hand-edited topology) still runs as a command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Interface

from pyroute2.netlink.exceptions import NetlinkError

from .. import netlink


def _addr_add(ns: str, argv: Sequence[str]) -> Callable[[], None] | None:
    if len(argv) == 6 and argv[4] == "dev" and "/" in argv[3]:
        iface = IPv4Interface(argv[3])
        return lambda: netlink.add_address(ns, argv[5], iface)
    return None


def _default_route(ns: str, argv: Sequence[str]) -> Callable[[], None] | None:
    if len(argv) == 6 and argv[3:5] == ["default", "via"]:
        return lambda: netlink.add_route(ns, "default", via=argv[5], proto="boot")
    return None


def _link(ns: str, argv: Sequence[str]) -> Callable[[], None] | None:
    if argv[2] == "add" and len(argv) == 6 and argv[4:6] == ["type", "bridge"]:
        return lambda: netlink.bridge(ns, argv[3], up=False)
    if argv[2] == "set" and len(argv) == 5 and argv[4] == "up":
        return lambda: netlink.set_link(ns, argv[3], up=True)
    if argv[2] == "set" and len(argv) == 6 and argv[4] == "master":
        return lambda: netlink.set_link(ns, argv[3], master=argv[5])
    return None


_FORMS = {("ip", "addr", "add"): _addr_add, ("ip", "route", "replace"): _default_route,
          ("ip", "link", "add"): _link, ("ip", "link", "set"): _link}


def as_netlink(ns: str, argv: Sequence[str]) -> Callable[[], None] | None:
    """The netlink request an exec line stands for, or None when it is not one of the plan's forms."""
    argv = list(argv)
    if len(argv) < 4:
        return None
    form = _FORMS.get((argv[0], argv[1], argv[2]))
    try:
        return form(ns, argv) if form else None
    except ValueError:          # not an address after all: leave it to `ip`
        return None


def apply(ns: str, argv: Sequence[str]) -> str | None:
    """Apply one line through netlink: None when done, the kernel's refusal as `ip` words it, or
    raise LookupError (no such interface). Only for lines as_netlink() recognised."""
    request = as_netlink(ns, argv)
    assert request is not None
    try:
        request()
    except NetlinkError as exc:
        return f"RTNETLINK answers: {exc.args[1] if len(exc.args) > 1 else exc}"
    return None
