"""The options of encrypted tunnels in an intent: `wireguard:` and `ipsec:` under a tunnel.

Kept apart from intent.py because only encrypted tunnels have them; every option has a default
(docs/intent.md), so changing `type:` alone is always enough. File paths (keys, PSKs) are kept as
written: plan.py reads them, relative to the intent's folder, and never prints what they hold.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .model import ESP_DEFAULT, IKE_DEFAULT, CryptoOptions, Dpd, Proposal

if TYPE_CHECKING:
    from .intent import Reader
    from .yamlpos import Y

# A secret file's path ends up in configs, topologies and scripts (never the secret itself): no
# blanks, quotes or shell characters.
PATH_RE = re.compile(r"^[A-Za-z0-9._/+-]{1,255}$")
# The algorithms every supported release and both userspace and kernel IPsec accept.
ENCRYPTIONS = ("aes128gcm128", "aes256gcm128", "aes128", "aes256")
HASHES = ("sha1", "sha256", "sha384", "sha512")
DH_GROUPS = (2, 5, *range(14, 27))
DPD_ACTIONS = ("clear", "restart")
IPSEC_MODES = ("gre", "policy")
# What a policy-based IPsec tunnel has not: it protects the LANs' packets themselves.
NO_INTERFACE_KEYS = ("subnet", "addresses", "ifnames", "mtu")
OPTIONS = {"wireguard": ("ports", "keepalive", "psk"), "ipsec": ("mode", "ike", "esp", "dpd", "psk")}


def policy_mode(y: Y) -> bool:
    """Whether a tunnel's raw mapping asks for policy-based IPsec (read before its keys are
    checked: such a tunnel needs no subnet)."""
    ipsec = y.value.get("ipsec") if y.is_map else None
    mode = ipsec.value.get("mode") if ipsec is not None and ipsec.is_map else None
    return mode is not None and mode.value == "policy"


def no_interface(r: Reader, m: dict[str, Y]) -> None:
    for key in NO_INTERFACE_KEYS:
        if key in m:
            r.problems.add(m[key].key_where or m[key].where,
                           f"a policy-based IPsec tunnel has no {key}: it has no tunnel interface",
                           "leave it out: ESP carries the LANs' packets and its MTU is derived; or use mode: gre")


def path(r: Reader, y: Y) -> str | None:
    s = r.string(y, "a file path")
    if s is not None and not PATH_RE.match(s):
        r.problems.add(y.where, f"{s!r} is not a usable file path",
                       "use letters, digits and . _ / + - (no blanks or quotes): it is written into configs")
        return None
    return s


def read(r: Reader, ttype: str, key: str, y: Y) -> CryptoOptions | None:
    """The `wireguard:` or `ipsec:` mapping of a tunnel of type `ttype`."""
    if key != ttype:
        r.problems.add(y.key_where or y.where, f"{key!r} options on a tunnel of type {ttype!r}",
                       f"{key!r} options go with type: {key}")
        return None
    m = r.mapping(y, OPTIONS[key]) or {}
    pos = {k: v.where for k, v in m.items()}
    out = CryptoOptions(y.where, pos)
    if "ports" in m:
        items = r.seq(m["ports"], "a list of 2 port numbers")
        ports = [r.integer(i, 1, 65535) for i in items]
        if len(items) != 2:
            r.problems.add(m["ports"].where, f"give one listen port per endpoint (2), got {len(items)}")
        elif ports[0] is not None and ports[1] is not None:
            out = _replace(out, ports=(ports[0], ports[1]))
    if "keepalive" in m:
        out = _replace(out, keepalive=r.integer(m["keepalive"], 1, 65535))
    if "psk" in m:
        out = _replace(out, psk=path(r, m["psk"]))
    if "mode" in m:
        out = _replace(out, mode=r.one_of(m["mode"], IPSEC_MODES, "IPsec mode") or out.mode)
    if "ike" in m:
        out = _replace(out, ike=_proposal(r, m["ike"], IKE_DEFAULT, "dh_group"))
    if "esp" in m:
        out = _replace(out, esp=_proposal(r, m["esp"], ESP_DEFAULT, "pfs"))
    if "dpd" in m:
        d = r.mapping(m["dpd"], ("action", "interval", "timeout")) or {}
        base = Dpd(m["dpd"].where, {k: v.where for k, v in d.items()})
        out = _replace(out, dpd=Dpd(base.where, base.pos,
                                    action=r.one_of(d["action"], DPD_ACTIONS, "DPD action") or base.action
                                    if "action" in d else base.action,
                                    interval=_int(r, d, "interval", 2, 86400, base.interval),
                                    timeout=_int(r, d, "timeout", 2, 86400, base.timeout)))
    return out


def _replace(o: CryptoOptions, **kw: Any) -> CryptoOptions:
    return replace(o, **{k: v for k, v in kw.items() if v is not None})


def _int(r: Reader, m: dict[str, Y], key: str, lo: int, hi: int, default: int) -> int:
    if key not in m:
        return default
    value = r.integer(m[key], lo, hi)
    return default if value is None else value


def _proposal(r: Reader, y: Y, default: Proposal, group_key: str) -> Proposal:
    m = r.mapping(y, ("encryption", "hash", group_key, "lifetime")) or {}
    group = default.dh_group
    if group_key in m:
        v = m[group_key]
        if isinstance(v.value, int) and not isinstance(v.value, bool) and (v.value in DH_GROUPS or
                                                                          (group_key == "pfs" and v.value == 0)):
            group = v.value
        else:
            r.problems.add(v.where, f"{v.value!r} is not a Diffie-Hellman group clabgen renders",
                           "use 2, 5 or 14..26" + (" (0: no PFS)" if group_key == "pfs" else ""))
    return Proposal(y.where, {k: v.where for k, v in m.items()},
                    encryption=r.one_of(m["encryption"], ENCRYPTIONS, "encryption") or default.encryption
                    if "encryption" in m else default.encryption,
                    hash=r.one_of(m["hash"], HASHES, "hash") or default.hash if "hash" in m else default.hash,
                    dh_group=group, lifetime=_int(r, m, "lifetime", 30, 86400, default.lifetime))
