"""Routes as `ip route show` prints them: one format for expected routes and routes read back."""

from __future__ import annotations


def route_text(dst: str, dev: str, via: str | None, proto: str, scope: str, src: str | None,
               metric: int | None, nexthops: tuple[tuple[str, str], ...] = ()) -> str:
    """One line; a multipath route lists `nexthop via A dev D weight 1` per path, as iproute2 does
    on its continuation lines."""
    parts = [dst]
    if via:
        parts += ["via", via]
    if dev:
        parts += ["dev", dev]
    if proto != "boot":   # iproute2 leaves out the proto of routes added by `ip route add`
        parts += ["proto", proto]
    if scope != "universe":
        parts += ["scope", scope]
    if src:
        parts += ["src", src]
    if metric:
        parts += ["metric", str(metric)]
    for hop_via, hop_dev in nexthops:
        parts += ["nexthop", "via", hop_via, "dev", hop_dev, "weight", "1"]
    return " ".join(parts)
