"""The dataplane's input: which userspace tunnels to run, checked before anything is created."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..tunnels import TUNNEL_TYPES

# Overhead and outer IP protocol come from the one tunnel table (clabgen.tunnels). Encrypted types
# are their daemons' (GRE over IPsec reaches this dataplane as plain gre).
OVERHEAD: dict[str, int] = {name: t.overhead for name, t in TUNNEL_TYPES.items() if not t.encrypted}
PROTO: dict[str, int] = {name: t.ip_proto for name, t in TUNNEL_TYPES.items() if not t.encrypted}

_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_NETNS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DataplaneError(RuntimeError):
    """Anything that stops the userspace dataplane from doing what the spec asks."""


@dataclass(frozen=True)
class TunnelSpec:
    """One point-to-point tunnel endpoint, as `ip tunnel add` would describe it."""

    netns: str | None
    ifname: str
    mode: str
    local: str
    remote: str
    address: str  # "1.1.1.1/24": the tunnel interface's own address
    mtu: int
    ttl: int = 0  # outer TTL: 0 copies the inner packet's (the kernel's `ttl inherit`), else fixed

    @property
    def overhead(self) -> int:
        return OVERHEAD[self.mode]

    @property
    def proto(self) -> int:
        return PROTO[self.mode]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_tunnel(raw: dict[str, Any], where: str) -> TunnelSpec:
    """Build one TunnelSpec, naming the offending field so a bad spec is easy to fix."""
    known = {"netns", "ifname", "mode", "local", "remote", "address", "mtu", "ttl"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataplaneError(f"{where}: unknown keys {unknown}; valid: {sorted(known)}")
    missing = sorted(known - set(raw) - {"netns", "ttl"})
    if missing:
        raise DataplaneError(f"{where}: missing keys {missing}")
    netns = raw.get("netns")
    if netns is not None and not (isinstance(netns, str) and _NETNS.match(netns)):
        raise DataplaneError(f"{where}.netns: {netns!r} is not a netns name")
    ifname = raw["ifname"]
    if not (isinstance(ifname, str) and _IFNAME.match(ifname)):
        raise DataplaneError(f"{where}.ifname: {ifname!r} is not an interface name (<= 15 chars)")
    mode = raw["mode"]
    if mode not in OVERHEAD:
        raise DataplaneError(f"{where}.mode: {mode!r} unknown; valid: {sorted(OVERHEAD)}")
    for key in ("local", "remote"):
        try:
            ipaddress.IPv4Address(raw[key])
        except (ValueError, TypeError) as exc:
            raise DataplaneError(f"{where}.{key}: {raw[key]!r} is not an IPv4 address") from exc
    try:
        ipaddress.IPv4Interface(raw["address"])
    except (ValueError, TypeError) as exc:
        raise DataplaneError(f"{where}.address: {raw['address']!r} is not ADDR/LEN") from exc
    mtu = raw["mtu"]
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535 - OVERHEAD[mode]:
        raise DataplaneError(f"{where}.mtu: {mtu!r} must be an integer in 68..{65535 - OVERHEAD[mode]}")
    ttl = raw.get("ttl", 0)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 255:
        raise DataplaneError(f"{where}.ttl: {ttl!r} must be an integer in 0..255 (0: inherit the inner TTL)")
    return TunnelSpec(netns, ifname, mode, raw["local"], raw["remote"], raw["address"], mtu, ttl)


def parse_spec(data: dict[str, Any]) -> tuple[TunnelSpec, ...]:
    """Check a whole spec; two tunnels may not share a (netns, ifname) or a (netns, local, remote, mode)."""
    if not isinstance(data, dict) or not isinstance(data.get("tunnels"), list):
        raise DataplaneError('spec: expected {"tunnels": [...]}')
    tunnels = tuple(parse_tunnel(t, f"tunnels[{i}]") for i, t in enumerate(data["tunnels"]))
    seen: dict[tuple[Any, ...], int] = {}
    for i, t in enumerate(tunnels):
        for key in ((t.netns, "if", t.ifname), (t.netns, "ep", t.mode, t.local, t.remote)):
            if key in seen:
                raise DataplaneError(f"tunnels[{i}]: clashes with tunnels[{seen[key]}] ({key[2:]})")
            seen[key] = i
    return tunnels


def load_spec(path: Path) -> tuple[TunnelSpec, ...]:
    return parse_spec(json.loads(path.read_text()))
