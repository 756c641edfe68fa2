"""The plan phase of encrypted tunnels: listen ports, keys, secrets and proposals of each end.

Everything has a derived value so `type: wireguard` or `type: ipsec` alone is a whole lab:
WireGuard listen ports count 51820, 51821, ... per gateway (in tunnel order, skipping ports given
explicitly), each gateway has one WireGuard key pair (VyOS 1.2 keeps a single key file per router),
IPsec gets a PSK per tunnel. Derived keys and PSKs are lab-only (keys.py); a file named in the
intent is read here, so a bad file fails the render, and its contents go into rendered files only
with `write_secrets: true`.
"""

from __future__ import annotations

from pathlib import Path

from . import keys
from .errors import Problems, Where
from .model import CryptoOptions, Lab, Tunnel
from .planned import Crypto, CryptoEnd, Secret
from .tunnels import NAT_T_PORT, tunnel_type

WG_BASE_PORT = 51820


def crypto(lab: Lab, problems: Problems) -> dict[int, Crypto]:
    """tunnel index -> its Crypto, for the encrypted tunnels of the lab."""
    gateways = {s.gateway.name: s.gateway for s in lab.sites}
    base = lab.source.parent
    private: dict[str, tuple[bytes, Secret]] = {}
    for name, gw in gateways.items():
        if gw.wireguard_key is None:
            key = keys.lab_private_key(lab.name, name)
            private[name] = key, Secret(keys.b64(key), lab_only=True)
            continue
        try:
            key = keys.read_wireguard_key(base / gw.wireguard_key)
        except keys.SecretFileError as exc:
            problems.add(gw.at("wireguard_key"), str(exc))
            key = bytes(32)
        private[name] = key, Secret(keys.b64(key) if lab.write_secrets else None, gw.wireguard_key)
    ports = _wireguard_ports(lab, problems)
    out: dict[int, Crypto] = {}
    for i, t in enumerate(lab.tunnels):
        ttype = tunnel_type(t.type)
        if not ttype.encrypted or len(t.endpoints) != 2:
            continue
        o = t.crypto or CryptoOptions(t.where)
        name = t.name or f"{t.endpoints[0]}-{t.endpoints[1]}-{t.type}"
        if ttype.ifname_kind == "wireguard":
            ends = tuple(CryptoEnd(n, ports[(i, n)], private[n][1], keys.b64(keys.public_key(private[n][0])))
                         for n in t.endpoints)
            psk = _secret(lab, t, o, base, problems, wireguard=True) if o.psk else None
        else:
            ends = tuple(CryptoEnd(n, NAT_T_PORT) for n in t.endpoints)
            psk = _secret(lab, t, o, base, problems, wireguard=False) if o.psk else \
                Secret(keys.lab_psk(lab.name, name), lab_only=True)
        out[i] = Crypto((ends[0], ends[1]), psk, o.keepalive, o.mode,
                        (o.ike.encryption, o.ike.hash, o.ike.dh_group, o.ike.lifetime),
                        (o.esp.encryption, o.esp.hash, o.esp.dh_group, o.esp.lifetime),
                        (o.dpd.action, o.dpd.interval, o.dpd.timeout))
    return out


def _secret(lab: Lab, t: Tunnel, o: CryptoOptions, base: Path, problems: Problems, *, wireguard: bool) -> Secret:
    assert o.psk is not None
    where = o.at("psk")
    try:
        value = keys.b64(keys.read_wireguard_key(base / o.psk, "WireGuard preshared key")) if wireguard \
            else keys.read_psk(base / o.psk)
    except keys.SecretFileError as exc:
        problems.add(where, str(exc))
        value = ""
    return Secret(value if lab.write_secrets else None, o.psk)


def _wireguard_ports(lab: Lab, problems: Problems) -> dict[tuple[int, str], int]:
    """(tunnel index, gateway) -> listen port: explicit ones first, then 51820, 51821, ... per gateway."""
    wg = [(i, t) for i, t in enumerate(lab.tunnels) if tunnel_type(t.type).ifname_kind == "wireguard"
          and len(t.endpoints) == 2]
    taken: dict[str, dict[int, Where]] = {}
    out: dict[tuple[int, str], int] = {}
    for i, t in wg:
        if t.crypto and t.crypto.ports:
            for node, port in zip(t.endpoints, t.crypto.ports):
                where = t.crypto.at("ports")
                if port in taken.get(node, {}):
                    problems.add(where, f"{node} listens on port {port} for two WireGuard tunnels",
                                 f"the first at line {taken[node][port].line}")
                taken.setdefault(node, {})[port] = where
                out[(i, node)] = port
    for i, t in wg:
        for node in t.endpoints:
            if (i, node) in out:
                continue
            port = WG_BASE_PORT
            while port in taken.get(node, {}):
                port += 1
            taken.setdefault(node, {})[port] = t.where
            out[(i, node)] = port
    return out
