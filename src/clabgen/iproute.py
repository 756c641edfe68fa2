"""Routes as `ip route show` prints them: one format for expected routes and routes read back."""

from __future__ import annotations


def route_text(dst: str, dev: str, via: str | None, proto: str, scope: str, src: str | None,
               metric: int | None) -> str:
    parts = [dst]
    if via:
        parts += ["via", via]
    parts += ["dev", dev]
    if proto != "boot":   # iproute2 leaves out the proto of routes added by `ip route add`
        parts += ["proto", proto]
    if scope != "universe":
        parts += ["scope", scope]
    if src:
        parts += ["src", src]
    if metric:
        parts += ["metric", str(metric)]
    return " ".join(parts)
