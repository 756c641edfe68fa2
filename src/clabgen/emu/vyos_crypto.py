"""Read `interfaces wireguard` and `vpn ipsec` of a VyOS config.boot: what the emulation runs.

1.2 and 1.4 write both differently (research notes, docs/dataplane.md): 1.2's WireGuard keeps its
private key in /config/auth/wireguard/private.key and names a peer's `pubkey` and `endpoint
IP:PORT`; 1.4 has `private-key`, `public-key`, `address` and `port`. 1.2's IPsec peers are tagged
by the remote address with the PSK inline (`authentication pre-shared-secret`) and
`ipsec-interfaces`; 1.4 names peers, keeps PSKs under `authentication psk NAME {id, secret}` and
says `interface`. A node of the other release is an error saying so; a value VyOS refuses is
FILE:LINE; what VyOS accepts but the emulation does not run (x509, VTI, remote access ...) is
listed as not applied. Secrets (keys, PSKs) are checked but never quoted in a message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network

from ..vyos_config import CNode
from .vyos import At, _address, _arg, _named, _Reader, host_address, integer_in, ipv4_address, ipv4_prefix

WG_KEY_FILE_12 = "/config/auth/wireguard/private.key"
ENCRYPTION_12 = ("aes128", "aes256", "aes128gcm128", "aes256gcm128", "3des", "chacha20poly1305")
ENCRYPTION_14 = ("null", "aes128", "aes192", "aes256", "aes128ctr", "aes192ctr", "aes256ctr", "aes128gcm64",
                 "aes192gcm64", "aes256gcm64", "aes128gcm96", "aes192gcm96", "aes256gcm96", "aes128gcm128",
                 "aes192gcm128", "aes256gcm128", "3des", "chacha20poly1305")
HASH_12 = ("md5", "sha1", "sha256", "sha384", "sha512")
HASH_14 = ("md5", "md5_128", "sha1", "sha1_160", "sha256", "sha256_96", "sha384", "sha512", "aesxcbc", "aescmac")
DH_12 = (2, 5, *range(14, 27))
DH_14 = (1, 2, 5, *range(14, 33))
# strongSwan's names of VyOS's DH groups (vyos-1x python/vyos/template.py get_esp_ike_cipher).
DH_NAMES = {1: "modp768", 2: "modp1024", 5: "modp1536", 14: "modp2048", 15: "modp3072", 16: "modp4096",
            17: "modp6144", 18: "modp8192", 19: "ecp256", 20: "ecp384", 21: "ecp521", 22: "modp1024s160",
            23: "modp2048s224", 24: "modp2048s256", 25: "ecp192", 26: "ecp224", 27: "ecp224bp", 28: "ecp256bp",
            29: "ecp384bp", 30: "ecp512bp", 31: "curve25519", 32: "curve448"}
_PEER_14 = re.compile(r"[-_a-zA-Z0-9|@]+")
_GROUP_12 = re.compile(r"[-_a-zA-Z0-9.]+")


@dataclass(frozen=True)
class WgPeer:
    name: str
    public_key: str
    endpoint: tuple[str, int] | None        # address, port
    allowed_ips: tuple[str, ...]
    keepalive: int | None = None
    psk: str | None = field(default=None, repr=False)   # base64; a secret
    line: int = 0


@dataclass(frozen=True)
class WgInterface:
    ifname: str
    path: str
    addresses: tuple[At[IPv4Interface], ...]
    mtu: At[int] | None
    port: int | None
    private_key: str | None = field(repr=False)   # 1.4: the leaf (a secret); 1.2: None (key_file)
    key_file: str | None                    # 1.2: where VyOS reads the key from
    peers: tuple[WgPeer, ...]
    line: int = 0


@dataclass(frozen=True)
class Proposal:
    encryption: str
    hash: str
    dh_group: int | None = None
    prf: str | None = None

    def text(self, pfs: int | None = None) -> str:
        """strongSwan's proposal string, as vyos-1x builds it (`aes128gcm128-sha256-modp2048`)."""
        out = f"{self.encryption}-{self.hash}"
        if self.prf:
            out += f"-{self.prf}"
        group = self.dh_group if self.dh_group is not None else pfs
        return out + (f"-{DH_NAMES[group]}" if group else "")


@dataclass(frozen=True)
class IkeGroup:
    name: str
    proposals: tuple[Proposal, ...]
    version: int = 0                        # 0: either, 1, 2
    lifetime: int = 28800
    dpd: tuple[str, int, int] | None = None   # action, interval, timeout
    line: int = 0


@dataclass(frozen=True)
class EspGroup:
    name: str
    proposals: tuple[Proposal, ...]
    pfs: int | None = None                  # a DH group; None: no PFS
    lifetime: int = 3600
    mode: str = "tunnel"
    line: int = 0


@dataclass(frozen=True)
class IpsecTunnel:
    number: str
    local_ts: tuple[str, ...]               # prefixes; empty: the local address
    remote_ts: tuple[str, ...]
    protocol: str | None
    esp_group: str | None


@dataclass(frozen=True)
class IpsecPeer:
    name: str
    path: str
    local: str
    remote: str
    local_id: str | None
    remote_id: str | None
    psk: str | None = field(repr=False)     # a secret
    ike_group: str
    esp_group: str | None
    initiate: bool
    force_udp: bool
    tunnels: tuple[IpsecTunnel, ...]
    line: int = 0


@dataclass
class Ipsec:
    interfaces: list[str] = field(default_factory=list)
    ike: dict[str, IkeGroup] = field(default_factory=dict)
    esp: dict[str, EspGroup] = field(default_factory=dict)
    peers: list[IpsecPeer] = field(default_factory=list)
    psks: list[tuple[tuple[str, ...], str]] = field(default_factory=list, repr=False)   # 1.4: (ids, secret)
    line: int = 0


def legacy(r: _Reader) -> bool:
    return r.release.name in ("1.2", "any")


def modern(r: _Reader) -> bool:
    return r.release.name != "1.2"


def _other(r: _Reader, node: CNode, path: str, instead: str) -> None:
    r.problem(node, path, f"not {r.release.label} syntax: {instead}")


def _base64_key(value: str) -> str:
    try:
        if len(base64.b64decode(value, validate=True)) == 32:
            return value
    except ValueError:
        pass
    raise ValueError("not a base64 32-byte key")


def _secret(r: _Reader, node: CNode, path: str, check: Callable[[str], str]) -> str | None:
    """A secret leaf: checked like any value, but a refusal never quotes it."""
    raw = _arg(node)
    if raw is None:
        r.problem(node, path, "needs a value")
        return None
    try:
        return check(raw)
    except ValueError as exc:
        r.problem(node, path, f"invalid value (a secret, not shown): {exc}")
        return None


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"not one of {', '.join(allowed)}")
        return value
    return check


def _dh(allowed: tuple[int, ...]) -> Callable[[str], int]:
    def check(value: str) -> int:
        if not value.isdigit() or int(value) not in allowed:
            raise ValueError(f"not a DH group this release accepts ({', '.join(map(str, allowed))})")
        return int(value)
    return check


def _printable(value: str) -> str:
    if not value or any(not c.isprintable() for c in value):
        raise ValueError("not printable text")
    return value


# --- interfaces wireguard -------------------------------------------------------------------


def read_wireguard(r: _Reader, node: CNode, ifname: str, path: str, on_ip: Callable[[CNode], None]) -> WgInterface | None:
    """One `interfaces wireguard wgN`; None when it has a problem (already reported)."""
    before = len(r.problems.items)
    rel = r.release
    mtu_bounds = (68, 9000) if rel.name == "1.2" else (68, 16000)
    port = private = None
    peers = []
    for c in node.children:
        if c.name in ("address", "mtu"):
            continue
        if c.name == "port":
            port = r.value(c, f"{path} port", integer_in((1, 65535)), "VyOS accepts 1..65535")
        elif c.name == "private-key":
            if not modern(r):
                _other(r, c, f"{path} private-key", "VyOS 1.2 reads the key from " + WG_KEY_FILE_12)
            else:
                private = _secret(r, c, f"{path} private-key", _base64_key)
        elif c.name == "peer":
            peer = _wg_peer(r, c, path)
            if peer is not None:
                peers.append(peer)
        elif c.name == "ip":
            on_ip(c)
        elif c.name not in ("description", "disable"):
            r.not_applied(f"{path} {_named(c)}")
    mtu = r.mtu(next(iter(node.find("mtu")), None), path, mtu_bounds)
    addresses = r.addresses(node.find("address"), path, dhcp=False)
    if modern(r) and not legacy(r) and private is None and not node.find("private-key"):
        r.problem(node, path, "no private-key: VyOS refuses to commit a WireGuard interface without one",
                  "a lab with key files fills it in at deploy time (clabgen.secrets); was the config deployed "
                  "from its lab directory?")
    if not peers:
        r.not_applied(f"{path} (no peer: nothing to send to)")
    if len(r.problems.items) != before:
        return None
    key_file = WG_KEY_FILE_12 if private is None else None
    return WgInterface(ifname, path, addresses, mtu, port, private, key_file, tuple(peers), node.line)


def _wg_peer(r: _Reader, node: CNode, ifpath: str) -> WgPeer | None:
    name = _arg(node) or ""
    path = f"{ifpath} peer {name}"
    public = psk = None
    address = port = endpoint = keepalive = None
    allowed = []
    for c in node.children:
        leaf = f"{path} {c.name}"
        if c.name in ("pubkey", "public-key"):
            if (c.name == "pubkey") != (r.release.name == "1.2") and r.release.name != "any":
                _other(r, c, leaf, "a peer's key is `pubkey` in 1.2, `public-key` since 1.3")
                continue
            public = r.value(c, leaf, _base64_key)
        elif c.name == "endpoint":
            if not legacy(r):
                _other(r, c, leaf, "a peer's endpoint is `address` and `port` since VyOS 1.3")
                continue
            endpoint = r.value(c, leaf, _endpoint, "write ADDRESS:PORT")
        elif c.name in ("address", "port"):
            if not modern(r):
                _other(r, c, leaf, "VyOS 1.2 writes the peer's `endpoint ADDRESS:PORT`")
                continue
            if c.name == "address":
                address = r.value(c, leaf, lambda v: str(_address(v)))
            else:
                port = r.value(c, leaf, integer_in((1, 65535)), "VyOS accepts 1..65535")
        elif c.name == "allowed-ips":
            value = r.value(c, leaf, _ip_prefix)
            if value is not None:
                allowed.append(value)
        elif c.name == "persistent-keepalive":
            keepalive = r.value(c, leaf, integer_in((1, 65535)), "VyOS accepts 1..65535")
        elif c.name == "preshared-key":
            psk = _secret(r, c, leaf, _base64_key)
        elif c.name not in ("description", "disable"):
            r.not_applied(f"{path} {_named(c)}")
    if address is not None and port is not None:
        endpoint = (address, port)
    if public is None:
        r.problem(node, path, f"no {'pubkey' if r.release.name == '1.2' else 'public-key'}: VyOS refuses to commit "
                              "a peer without one")
        return None
    if not allowed:
        r.problem(node, path, "no allowed-ips: VyOS refuses to commit a peer without them")
        return None
    if endpoint is None:
        r.not_applied(f"{path} (no endpoint: it only answers, never starts a handshake)")
    return WgPeer(name, public, endpoint, tuple(allowed), keepalive, psk, node.line)


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("not ADDRESS:PORT")
    return str(ipv4_address(host)), int(port)


def _ip_prefix(value: str) -> str:
    try:
        return str(ipv4_prefix(value))
    except ValueError:
        host_address(value)      # 1.2's cidr and 1.4's ip-prefix both take 10.0.0.1/24 too
        return str(IPv4Network(value, strict=False))


# --- vpn ipsec ------------------------------------------------------------------------------


def read_vpn(r: _Reader, top: CNode) -> Ipsec | None:
    """`vpn ipsec` (the rest of `vpn` is not applied)."""
    out = None
    for node in top.children:
        if node.name != "ipsec":
            r.not_applied(f"vpn {_named(node)}")
            continue
        out = _ipsec(r, node)
    return out


def _ipsec(r: _Reader, node: CNode) -> Ipsec:
    ipsec = Ipsec(line=node.line)
    path = "vpn ipsec"
    peers: list[CNode] = []
    for c in node.children:
        if c.name == "esp-group":
            g = _esp_group(r, c)
            if g:
                ipsec.esp[g.name] = g
        elif c.name == "ike-group":
            ike = _ike_group(r, c)
            if ike:
                ipsec.ike[ike.name] = ike
        elif c.name == "ipsec-interfaces":
            if not legacy(r):
                _other(r, c, f"{path} ipsec-interfaces", "`vpn ipsec interface ethN` since VyOS 1.3")
                continue
            ipsec.interfaces += list(c.leaf_values("interface"))
        elif c.name == "interface":
            if not modern(r):
                _other(r, c, f"{path} interface", "VyOS 1.2 writes `ipsec-interfaces { interface ethN }`")
                continue
            if _arg(c):
                ipsec.interfaces.append(str(_arg(c)))
        elif c.name == "authentication":
            if not modern(r):
                _other(r, c, f"{path} authentication", "VyOS 1.2 keeps the PSK in the peer "
                                                       "(`authentication pre-shared-secret`)")
                continue
            _psks(r, c, ipsec)
        elif c.name == "site-to-site":
            for p in c.children:
                if p.name == "peer":
                    peers.append(p)
                else:
                    r.not_applied(f"{path} site-to-site {_named(p)}")
        elif c.name not in ("logging", "log", "nat-traversal", "nat-networks"):
            r.not_applied(f"{path} {_named(c)}")
    for p in peers:
        peer = _peer(r, p, ipsec)
        if peer is not None:
            ipsec.peers.append(peer)
    return ipsec


def _psks(r: _Reader, node: CNode, ipsec: Ipsec) -> None:
    for c in node.children:
        if c.name != "psk":
            r.not_applied(f"vpn ipsec authentication {_named(c)}")
            continue
        path = f"vpn ipsec authentication psk {_arg(c)}"
        ids = tuple(c.leaf_values("id"))
        secret_node = next(iter(c.find("secret")), None)
        secret = _secret(r, secret_node, f"{path} secret", _printable) if secret_node else None
        for leaf in c.children:
            if leaf.name not in ("id", "secret"):
                r.not_applied(f"{path} {_named(leaf)}")
        if not ids or secret_node is None:
            r.problem(c, path, "VyOS refuses a psk without id and secret (vpn_ipsec.py)",
                      "a lab with PSK files fills the secret in at deploy time (clabgen.secrets)"
                      if secret_node is None else "")
            continue
        if secret is not None:
            ipsec.psks.append((ids, secret))


def _proposals(r: _Reader, node: CNode, path: str, ike: bool) -> tuple[Proposal, ...]:
    enc = ENCRYPTION_12 if r.release.name == "1.2" else ENCRYPTION_14
    hashes = HASH_12 if r.release.name == "1.2" else HASH_14
    out = []
    for p in node.find("proposal"):
        ppath = f"{path} proposal {_arg(p)}"
        values: dict[str, object] = {}
        for c in p.children:
            leaf = f"{ppath} {c.name}"
            if c.name == "encryption":
                values["encryption"] = r.value(c, leaf, _choice(enc))
            elif c.name == "hash":
                values["hash"] = r.value(c, leaf, _choice(hashes))
            elif c.name == "dh-group" and ike:
                values["dh_group"] = r.value(c, leaf, _dh(DH_12 if r.release.name == "1.2" else DH_14))
            elif c.name == "prf" and ike and modern(r):
                values["prf"] = r.value(c, leaf, _choice(("prfmd5", "prfsha1", "prfaesxcbc", "prfaescmac",
                                                          "prfsha256", "prfsha384", "prfsha512")))
            else:
                r.not_applied(f"{ppath} {_named(c)}")
        if values.get("encryption") and values.get("hash"):   # vyos-1x skips a proposal missing either
            group = values.get("dh_group")
            out.append(Proposal(str(values["encryption"]), str(values["hash"]), group if isinstance(group, int) else None,
                                str(values["prf"]) if values.get("prf") else None))
    return tuple(out)


def _group_name(r: _Reader, node: CNode, path: str) -> str | None:
    name = _arg(node)
    if name is None or (r.release.name == "1.2" and not _GROUP_12.fullmatch(name)):
        r.problem(node, path, f"invalid name '{name}'")
        return None
    return name


def _esp_group(r: _Reader, node: CNode) -> EspGroup | None:
    name = _group_name(r, node, "vpn ipsec esp-group")
    if name is None:
        return None
    path = f"vpn ipsec esp-group {name}"
    pfs: int | None = None
    lifetime, mode = 3600, "tunnel"
    for c in node.children:
        leaf = f"{path} {c.name}"
        if c.name == "pfs":
            value = r.value(c, leaf, lambda v: v if v in ("enable", "disable") or
                            (v.startswith("dh-group") and v[8:].isdigit() and int(v[8:]) in DH_NAMES) else
                            _choice(("enable", "disable", "dh-groupN"))(v))
            pfs = int(value[8:]) if value and value.startswith("dh-group") else (14 if value == "enable" else None)
        elif c.name == "lifetime":
            lifetime = r.value(c, leaf, integer_in((30, 86400)), "VyOS accepts 30..86400") or lifetime
        elif c.name == "mode":
            mode = r.value(c, leaf, _choice(("tunnel", "transport"))) or mode
        elif c.name == "compression":
            if r.release.name == "1.2":
                r.value(c, leaf, _choice(("enable", "disable")))
            if c.leaf and (_arg(c) in (None, "enable")):
                r.not_applied(f"{path} compression (IPComp is not emulated)")
        elif c.name != "proposal":
            r.not_applied(f"{path} {_named(c)}")
    if mode == "transport":
        r.not_applied(f"{path} mode transport (the emulation runs ESP in tunnel mode: strongSwan's userspace "
                      "ESP has no transport mode)")
    return EspGroup(name, _proposals(r, node, path, ike=False), pfs, lifetime, "tunnel", node.line)


def _ike_group(r: _Reader, node: CNode) -> IkeGroup | None:
    name = _group_name(r, node, "vpn ipsec ike-group")
    if name is None:
        return None
    path = f"vpn ipsec ike-group {name}"
    version, lifetime = 0, 28800
    dpd = None
    actions = ("hold", "clear", "restart") if r.release.name == "1.2" else ("trap", "clear", "restart")
    for c in node.children:
        leaf = f"{path} {c.name}"
        if c.name == "key-exchange":
            value = r.value(c, leaf, _choice(("ikev1", "ikev2")))
            version = int(value[-1]) if value else version
        elif c.name == "lifetime":
            bounds = (30, 86400) if r.release.name == "1.2" else (0, 86400)
            lifetime = r.value(c, leaf, integer_in(bounds), f"VyOS accepts {bounds[0]}..{bounds[1]}") or lifetime
        elif c.name == "dead-peer-detection":
            d: dict[str, object] = {"action": "clear", "interval": 30, "timeout": 120}
            for x in c.children:
                xl = f"{leaf} {x.name}"
                if x.name == "action":
                    d["action"] = r.value(x, xl, _choice(actions)) or d["action"]
                elif x.name in ("interval", "timeout"):
                    d[x.name] = r.value(x, xl, integer_in((2, 86400)), "VyOS accepts 2..86400") or d[x.name]
            dpd = (str(d["action"]), int(str(d["interval"])), int(str(d["timeout"])))
        elif c.name not in ("proposal", "mode", "close-action", "ikev2-reauth", "mobike", "disable-mobike"):
            r.not_applied(f"{path} {_named(c)}")
    return IkeGroup(name, _proposals(r, node, path, ike=True), version, lifetime, dpd, node.line)


def _peer(r: _Reader, node: CNode, ipsec: Ipsec) -> IpsecPeer | None:
    name = _arg(node) or ""
    path = f"vpn ipsec site-to-site peer {name}"
    before = len(r.problems.items)
    if r.release.name == "1.2":
        try:
            remote: str | None = str(ipv4_address(name))
        except ValueError:
            r.problem(node, path, f"not {r.release.label} syntax: a peer is tagged by its remote IPv4 address "
                                  "(names and remote-address came with 1.3)")
            return None
    else:
        if not _PEER_14.fullmatch(name):
            r.problem(node, path, f"invalid peer name '{name}' ({r.release.label} accepts - _ a-z A-Z 0-9 | @)")
            return None
        remote = None
    values: dict[str, object] = {}
    tunnels: list[IpsecTunnel] = []
    for c in node.children:
        leaf = f"{path} {c.name}"
        if c.name == "authentication":
            values.update(_peer_auth(r, c, leaf))
        elif c.name == "connection-type":
            values["connection"] = r.value(c, leaf, _choice(("initiate", "respond", "none")
                                                             if modern(r) else ("initiate", "respond")))
        elif c.name in ("ike-group", "default-esp-group"):
            values[c.name] = r.value(c, leaf, str)
        elif c.name == "local-address":
            values["local"] = r.value(c, leaf, lambda v: str(ipv4_address(v)))
        elif c.name == "remote-address":
            if not modern(r):
                _other(r, c, leaf, "VyOS 1.2 tags the peer by its remote address")
                continue
            remote = r.value(c, leaf, lambda v: str(ipv4_address(v)))
        elif c.name in ("force-encapsulation", "force-udp-encapsulation"):
            if (c.name == "force-encapsulation") != legacy(r) and r.release.name != "any":
                _other(r, c, leaf, "`force-encapsulation enable` in 1.2, `force-udp-encapsulation` since 1.3")
                continue
            values["force_udp"] = _arg(c) in (None, "enable")
        elif c.name == "tunnel":
            t = _tunnel(r, c, path)
            if t:
                tunnels.append(t)
        elif c.name not in ("description", "ikev2-reauth"):
            r.not_applied(f"{path} {_named(c)}")
    if len(r.problems.items) != before:
        return None
    ike = str(values.get("ike-group") or "")
    esp = values.get("default-esp-group")
    missing = [x for x, ok in (("ike-group", ike in ipsec.ike), ("local-address", values.get("local")),
                               ("remote-address", remote)) if not ok]
    if missing:
        r.problem(node, path, f"VyOS refuses to commit this peer: {', '.join(missing)} "
                              f"{'missing or unknown' if 'ike-group' in missing else 'missing'}")
        return None
    if esp is not None and esp not in ipsec.esp:
        r.problem(node, path, f"default-esp-group {esp} is not defined")
        return None
    if not tunnels:
        r.not_applied(f"{path} (no tunnel: VTI and peer-wide policies are not emulated)")
    psk = values.get("psk")
    local, rem = str(values["local"]), str(remote)
    local_id = str(values.get("local_id") or local)
    remote_id = str(values.get("remote_id") or rem)
    if not legacy(r) or (psk is None and ipsec.psks):
        psk = next((s for ids, s in ipsec.psks if local_id in ids and remote_id in ids), psk)
    if psk is None:
        r.problem(node, path, "no pre-shared secret for this peer" + (
            f" (no `authentication psk` lists both ids {local_id} and {remote_id})" if modern(r) else ""),
            "a lab with PSK files fills it in at deploy time (clabgen.secrets)")
        return None
    return IpsecPeer(name, path, local, rem, local_id, remote_id, str(psk), ike, str(esp) if esp else None,
                     values.get("connection", "initiate") == "initiate", bool(values.get("force_udp")),
                     tuple(tunnels), node.line)


def _peer_auth(r: _Reader, node: CNode, path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for c in node.children:
        leaf = f"{path} {c.name}"
        if c.name == "mode":
            mode = r.value(c, leaf, _choice(("pre-shared-secret", "x509", "rsa")))
            if mode and mode != "pre-shared-secret":
                r.not_applied(f"{leaf} {mode} (only pre-shared-secret is emulated)")
        elif c.name == "pre-shared-secret":
            if not legacy(r):
                _other(r, c, leaf, "PSKs are `vpn ipsec authentication psk NAME secret` since VyOS 1.3")
                continue
            out["psk"] = _secret(r, c, leaf, _printable)
        elif c.name in ("id", "local-id"):
            if (c.name == "id") != (r.release.name == "1.2") and r.release.name != "any":
                _other(r, c, leaf, "`id` in 1.2, `local-id` since 1.3")
                continue
            out["local_id"] = r.value(c, leaf, _printable)
        elif c.name == "remote-id":
            out["remote_id"] = r.value(c, leaf, _printable)
        else:
            r.not_applied(f"{path} {_named(c)}")
    return out


def _tunnel(r: _Reader, node: CNode, peer_path: str) -> IpsecTunnel | None:
    number = _arg(node) or ""
    path = f"{peer_path} tunnel {number}"
    if not number.isdigit():
        r.problem(node, path, "a tunnel number is an integer")
        return None
    sides: dict[str, list[str]] = {"local": [], "remote": []}
    protocol = esp = None
    for c in node.children:
        leaf = f"{path} {c.name}"
        if c.name in sides:
            for x in c.children:
                if x.name == "prefix":
                    value = r.value(x, f"{leaf} prefix", lambda v: str(ipv4_prefix(v)))
                    if value:
                        sides[c.name].append(value)
                else:
                    r.not_applied(f"{leaf} {_named(x)}")
        elif c.name == "protocol":
            protocol = r.value(c, leaf, _protocol)
        elif c.name == "esp-group":
            esp = r.value(c, leaf, str)
        elif c.name == "disable":
            r.not_applied(f"{leaf} (a disabled tunnel is left out)")
            return None
        else:
            r.not_applied(f"{leaf} {_named(c)}")
    return IpsecTunnel(number, tuple(sides["local"]), tuple(sides["remote"]), protocol, esp)


# Traffic-selector protocols as numbers: strongSwan resolves names through /etc/protocols, which a
# minimal image (the vyos-emu container) does not have.
_PROTOCOLS = {"gre": "47", "47": "47", "tcp": "6", "6": "6", "udp": "17", "17": "17", "icmp": "1", "1": "1",
              "all": "", "ip": ""}


def _protocol(value: str) -> str:
    if value not in _PROTOCOLS:
        raise ValueError("not a protocol the emulation knows (gre, tcp, udp, icmp, all or their numbers)")
    return _PROTOCOLS[value]
