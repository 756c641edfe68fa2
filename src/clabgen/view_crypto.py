"""Template data of encrypted tunnel ends: formatting of what plan_crypto decided, nothing more.

A secret is given to templates as `value` (print it, with the lab-only comment when `lab_only`)
or, when the plan holds no value (a user's file, not to be written), as `file`: templates then
print the deploy-time placeholder `/* clabgen-secret LEAF FILE */`, which a deploy replaces with
the leaf and the file's contents in a private copy (clabgen.secrets).
"""

from __future__ import annotations

from typing import Any

from .emu.vyos_crypto import DH_NAMES
from .planned import Crypto, Secret, Tunnel, TunnelEnd

ALLOWED_IPS = "0.0.0.0/0"   # one peer per interface: the routing table decides what enters it


def secret(s: Secret | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"value": s.value, "file": s.file, "lab_only": s.lab_only}


def crypto_end(e: TunnelEnd, peer: TunnelEnd, t: Tunnel, c: Crypto, underlay_if: str) -> dict[str, Any]:
    """What the templates print for one end: `wireguard` or `ipsec` (the other is None)."""
    mine, theirs = c.end(e.node), c.peer(e.node)
    initiator = t.ends[0].node == e.node
    if t.type == "wireguard":
        return {"wireguard": {
            "port": mine.port, "peer": peer.node, "peer_address": str(peer.local), "peer_port": theirs.port,
            "peer_public_key": theirs.public_key, "public_key": mine.public_key,
            "private_key": secret(mine.private_key), "psk": secret(c.psk), "keepalive": c.keepalive,
            "allowed_ips": [ALLOWED_IPS]}, "ipsec": None}
    ike_enc, ike_hash, ike_dh, ike_life = c.ike
    esp_enc, esp_hash, esp_pfs, esp_life = c.esp
    dpd_action, dpd_interval, dpd_timeout = c.dpd
    return {"wireguard": None, "ipsec": {
        "group": t.name, "peer": peer.node, "local": str(e.local), "remote": str(peer.local),
        "underlay_if": underlay_if, "psk": secret(c.psk), "mode": c.mode,
        "connection_type": "initiate" if initiator else "respond",
        "ike": {"encryption": ike_enc, "hash": ike_hash, "dh_group": ike_dh, "lifetime": ike_life,
                "dh_name": DH_NAMES[ike_dh]},
        "esp": {"encryption": esp_enc, "hash": esp_hash, "pfs": f"dh-group{esp_pfs}" if esp_pfs else "disable",
                "lifetime": esp_life, "pfs_name": DH_NAMES[esp_pfs] if esp_pfs else None},
        "dpd": {"action": dpd_action, "interval": dpd_interval, "timeout": dpd_timeout}}}
