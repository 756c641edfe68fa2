"""Template data of encrypted tunnel ends: formatting of what plan_crypto decided, nothing more.

A secret is given to templates as `value` (print it, with the lab-only comment when `lab_only`)
or, when the plan holds no value (a user's file, not to be written), as `file`: templates then
print the deploy-time placeholder `/* clabgen-secret LEAF FILE */`, which a deploy replaces with
the leaf and the file's contents in a private copy (clabgen.secrets).
"""

from __future__ import annotations

from typing import Any

from .planned import Crypto, Policy, Secret, Tunnel, TunnelEnd

ALLOWED_IPS = "0.0.0.0/0"   # one peer per interface: the routing table decides what enters it


def secret(s: Secret | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"value": s.value, "file": s.file, "lab_only": s.lab_only}


def crypto_end(e: TunnelEnd, peer: TunnelEnd, t: Tunnel, c: Crypto, underlay_if: str,
               policy: Policy | None = None) -> dict[str, Any]:
    """What the templates print for one end: `wireguard` or `ipsec` (the other is None). A
    policy-based IPsec end lists its prefixes as `pairs` (VyOS 1.2: one `tunnel N` per local and
    remote prefix, numbered from 1) and as `local_ts`/`remote_ts` (1.4: one tunnel, many prefixes)."""
    mine, theirs = c.end(e.node), c.peer(e.node)
    initiator = t.ends[0].node == e.node
    if t.type == "wireguard":
        return {"wireguard": {
            "port": mine.port, "peer": peer.node, "peer_address": str(peer.local), "peer_port": theirs.port,
            "peer_public_key": theirs.public_key, "public_key": mine.public_key,
            "private_key": secret(mine.private_key), "psk": secret(c.psk), "keepalive": c.keepalive,
            "allowed_ips": [ALLOWED_IPS]}, "ipsec": None}
    # imported here: the emulator's modules cost a render of a lab without IPsec ~25 ms
    from .emu.vyos_crypto import DH_NAMES
    ike_enc, ike_hash, ike_dh, ike_life = c.ike
    esp_enc, esp_hash, esp_pfs, esp_life = c.esp
    dpd_action, dpd_interval, dpd_timeout = c.dpd
    return {"wireguard": None, "ipsec": {
        "group": t.name, "peer": peer.node, "local": str(e.local), "remote": str(peer.local),
        "underlay_if": underlay_if, "psk": secret(c.psk), "mode": c.mode,
        "local_ts": [str(n) for n in policy.local] if policy else [],
        "remote_ts": [str(n) for n in policy.remote] if policy else [],
        "pairs": [{"local": str(a), "remote": str(b)} for a in policy.local for b in policy.remote] if policy else [],
        "connection_type": "initiate" if initiator else "respond",
        "ike": {"encryption": ike_enc, "hash": ike_hash, "dh_group": ike_dh, "lifetime": ike_life,
                "dh_name": DH_NAMES[ike_dh]},
        "esp": {"encryption": esp_enc, "hash": esp_hash, "pfs": f"dh-group{esp_pfs}" if esp_pfs else "disable",
                "lifetime": esp_life, "pfs_name": DH_NAMES[esp_pfs] if esp_pfs else None},
        "dpd": {"action": dpd_action, "interval": dpd_interval, "timeout": dpd_timeout}}}


def readme_secrets(plan: Any) -> list[dict[str, str]]:
    """The lab README's table of keys and secrets: whose, where each comes from and which of the
    lab's files hold it (never the value itself)."""
    gateways = {g.name: g for g in plan.gateways}
    rows: list[dict[str, str]] = []
    seen: set[str] = set()

    def where(s: Secret, nodes: list[str], private_key: bool = False) -> str:
        configs = ", ".join(f"`startup-conf/{n}.cfg`" for n in nodes)
        scripts = ", ".join(f"`linux/{n}.sh`" for n in nodes)
        key_file = gateways[nodes[0]].wireguard_key_output if private_key else None
        if s.value is not None:
            return (f"`{key_file}`" if key_file else f"{configs} (and `.set`)") + f", {scripts}"
        if private_key and _binds_key(gateways[nodes[0]]):
            return (f"none: the topology binds `{s.file}` read-only where VyOS 1.2 reads the key; the Linux "
                    f"scripts ({scripts}) read the file when run")
        return (f"none: a placeholder `/* clabgen-secret ... */` in {configs}; a deploy fills a private copy "
                f"(0600) under `/run/clabgen/{plan.name}/secrets/`; the Linux scripts ({scripts}) read the file when run")

    def source(s: Secret) -> str:
        if s.lab_only:
            return "lab-only: derived from the lab name, not a secret"
        return f"file `{s.file}`" + (" (written into the lab: `write_secrets: true`)" if s.value is not None else
                                     ", read at render (checked) and deploy")

    for t in plan.tunnels:
        if t.crypto is None:
            continue
        for e in t.crypto.ends:
            if e.private_key is not None and e.node not in seen:
                seen.add(e.node)
                rows.append({"what": "WireGuard private key", "of": e.node, "source": source(e.private_key),
                             "where": where(e.private_key, [e.node], private_key=True)})
        if t.crypto.psk is not None:
            what = "WireGuard preshared key" if t.type == "wireguard" else "IPsec PSK (IKEv2)"
            nodes = [e.node for e in t.crypto.ends]
            rows.append({"what": what, "of": f"tunnel {t.name}", "source": source(t.crypto.psk),
                         "where": where(t.crypto.psk, nodes)})
    return rows


def _binds_key(g: Any) -> bool:
    return any(":/config/auth/wireguard/" in b for b in getattr(g.clab, "binds", ()) or ())
