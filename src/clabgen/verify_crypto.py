"""verify for encrypted tunnels: the daemons' own word (handshake, security associations), and
the wire: verify's probe crosses the tunnel, yet the underlay shows only ciphertext.

Handshakes are read from `wg show` (latest-handshakes, endpoints, listen-port: never `dump`,
which prints the private key) and `swanctl --list-sas`, run in the node through the runtime's
crypto_cli (netns: the node's own /run). The wire check captures on the sender's LAN, on the
tunnel interface and on the underlay interface while verify's own echo request (unique id and
payload) goes through: the probe must appear whole on the first two, and on the underlay the
outer packets between the two ends must all carry the tunnel type's signature (tunnels.py
wire_signature: WireGuard messages on its ports, ESP raw or in UDP 4500, IKE), one of them the
encrypted probe at the predicted length, and no frame may contain the probe's payload or its
inner address pair in clear.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable

from .contract import CaptureSpec, CryptoEndSpec, CryptoSpec
from .labdir import RenderedLab
from .runtimes.base import NodeHandle, Runtime
from .tunnels import tunnel_type
from .verify import ETH_HLEN, Check, Probe, _drain, _ip, _open_capture, _probe_in, _send_probe

HANDSHAKE_WAIT = 8.0        # seconds to wait for a handshake / established SAs
STALE = 180                 # WireGuard: a handshake older than this means the session has expired


def _cli(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle], node: str,
         argv: list[str]) -> tuple[int, str]:
    result = handles[node].exec([*runtime.crypto_cli(lab, node), *argv], timeout=10)
    return result.returncode, result.stdout if result.returncode == 0 else result.stderr


def _said(text: str) -> str:
    """A tool's complaint on one line, short (its last words)."""
    return " ".join(text.split())[-160:] or "no output"


def _table(text: str) -> dict[str, str]:
    """`wg show IF latest-handshakes|endpoints`: public key -> value."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        if value:
            out[key.strip()] = value.strip()
    return out


def _wireguard(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle], spec: CryptoSpec,
               end: CryptoEndSpec, peer: str) -> Check:
    label = f"{end.ifname} wireguard handshake"
    run: Callable[[list[str]], tuple[int, str]] = lambda argv: _cli(lab, runtime, handles, end.node, argv)  # noqa: E731
    deadline = time.monotonic() + HANDSHAKE_WAIT
    while True:
        code, text = run(["wg", "show", end.ifname, "latest-handshakes"])
        if code != 0:
            return Check("crypto", end.node, label, False,
                         f"wg show {end.ifname} failed (no WireGuard interface {end.ifname} on {end.node}, or its "
                         f"daemon died): {_said(text)}")
        stamp = int(_table(text).get(end.peer_public_key or "", "0") or 0)
        if stamp or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    short = (end.peer_public_key or "?")[:8]
    if not stamp:
        return Check("crypto", end.node, label, False,
                     f"no handshake with {peer} (public key {short}...) after {HANDSHAKE_WAIT:g}s: the handshake "
                     "fails (a wrong key on one side?), or the peer is unreachable on the underlay")
    age = int(time.time()) - stamp
    problems = []
    if age > STALE:
        problems.append(f"last handshake {age}s ago (sessions expire after {STALE}s)")
    _, endpoints = run(["wg", "show", end.ifname, "endpoints"])
    got = _table(endpoints).get(end.peer_public_key or "", "(none)")
    if got != f"{end.remote}:{end.peer_port}":
        problems.append(f"peer endpoint {got}, expected {end.remote}:{end.peer_port}")
    _, port = run(["wg", "show", end.ifname, "listen-port"])
    if port.strip() != str(end.port):
        problems.append(f"listening on port {port.strip() or '?'}, expected {end.port}")
    detail = "; ".join(problems) or (f"handshake with {peer} (public key {short}...) {max(age, 0)}s ago, endpoint "
                                     f"{got}, listening on {end.port}")
    return Check("crypto", end.node, label, not problems, detail)


_SA = re.compile(r"^(\S+): #\d+, (\w+), (IKEv\d)", re.M)
_ADDR = re.compile(r"^\s+(local|remote)\s+'[^']*' @ ([0-9.]+)\[(\d+)\]", re.M)
_CHILD = re.compile(r"^\s+(\S+): #\d+, reqid \d+, (\w+), ([\w-]+), (\S+)", re.M)
_CHILD_TS = re.compile(r"^\s+(local|remote)\s+([0-9./]+\S*)$", re.M)
_CHILD_TS_ALL = re.compile(r"^\s+(local|remote)\s+([0-9./\[\]]+(?: [0-9./\[\]]+)*)\s*$", re.M)


def ike_sas(text: str) -> list[dict[str, str]]:
    """`swanctl --list-sas` as a list of IKE SAs (state, addresses, first child's state, mode, ESP)."""
    out = []
    blocks = re.split(r"(?m)^(?=\S)", text)
    for b in blocks:
        head = _SA.search(b)
        if not head:
            continue
        sa = {"name": head.group(1), "state": head.group(2), "version": head.group(3)}
        for side, addr, port in _ADDR.findall(b):
            sa[side], sa[f"{side}_port"] = addr, port
        lines = b.splitlines()
        if len(lines) > 3:
            sa["ike"] = lines[3].strip()
        child = _CHILD.search(b)
        if child:
            sa.update(child=child.group(2), mode=child.group(3), esp=child.group(4))
            ts = dict(_CHILD_TS.findall(b[child.end():]))
            sa["ts"] = f"{ts.get('local', '?')} === {ts.get('remote', '?')}"
        sa["installed_ts"] = _installed_ts(b)
        out.append(sa)
    return out


def _installed_ts(block: str) -> str:
    """Every INSTALLED CHILD_SA's traffic selectors in an IKE SA's block, as "local|remote" with
    each side's prefixes sorted and space-separated (VyOS 1.2 has a CHILD_SA per prefix pair)."""
    local: set[str] = set()
    remote: set[str] = set()
    for child in re.split(r"(?m)^(?=\s+\S+: #\d+, reqid)", block)[1:]:
        head = _CHILD.search(child)
        if head is None or head.group(2) != "INSTALLED":
            continue
        for side, nets in _CHILD_TS_ALL.findall(child):
            (local if side == "local" else remote).update(nets.split())
    return f"{' '.join(sorted(local))}|{' '.join(sorted(remote))}"


def _ipsec(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle], spec: CryptoSpec,
           end: CryptoEndSpec, peer: str) -> Check:
    label = "IPsec security associations"
    swanctl = ["env", "STRONGSWAN_CONF=/run/strongswan.conf", "swanctl"]
    want_ts = f"{' '.join(sorted(end.local_ts))}|{' '.join(sorted(end.remote_ts))}"
    deadline = time.monotonic() + HANDSHAKE_WAIT
    while True:
        code, text = _cli(lab, runtime, handles, end.node, [*swanctl, "--list-sas"])
        if code != 0:
            return Check("crypto", end.node, label, False,
                         f"no IPsec daemon answers on {end.node} (charon is not running: its config has no "
                         f"`vpn ipsec` peer {end.remote}, or the daemon died): swanctl --list-sas: {_said(text)}")
        mine = [s for s in ike_sas(text) if s.get("local") == end.local and s.get("remote") == end.remote]
        good = [s for s in mine if s["state"] == "ESTABLISHED" and s.get("child") == "INSTALLED"]
        if end.local_ts:
            good = [s for s in good if s["installed_ts"] == want_ts]
        if good or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not good and end.local_ts and any(s.get("child") == "INSTALLED" for s in mine):
        got = next(s["installed_ts"] for s in mine if s.get("child") == "INSTALLED")
        return Check("crypto", end.node, label, False,
                     f"the CHILD_SAs with {peer} cover {_ts_text(got)}, the policy says {_ts_text(want_ts)}")
    if not good:
        seen = ", ".join(f"{s['state']}/{s.get('child', 'no CHILD_SA')}" for s in mine) or "none"
        why = _charon_said(lab, runtime, handles, end.node)
        return Check("crypto", end.node, label, False,
                     f"no IKE SA ESTABLISHED with a CHILD_SA INSTALLED between {end.local} and {end.remote} (with "
                     f"{peer}) after {HANDSHAKE_WAIT:g}s; SAs: {seen}: the IKE handshake fails"
                     + (f" (charon: {why})" if why else " (a wrong PSK on one side?)"))
    s = good[0]
    return Check("crypto", end.node, label, True,
                 f"IKE SA {s['state']} with {peer} ({s['version']} {s.get('ike', '')}), CHILD_SA {s['child']} "
                 f"{s.get('mode', '')} {s.get('esp', '')}, "
                 + (f"policies {_ts_text(want_ts)}" if end.local_ts else s.get('ts', '')))


def _ts_text(ts: str) -> str:
    local, _, remote = ts.partition("|")
    return f"{local.replace(' ', ', ') or 'nothing'} === {remote.replace(' ', ', ') or 'nothing'}"


def _charon_said(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle], node: str) -> str:
    """The last line of charon's log naming why a handshake failed (it never logs the PSK): the
    initiator hears AUTHENTICATION_FAILED, the responder's key "MAC mismatched"."""
    code, text = _cli(lab, runtime, handles, node, ["tail", "-n", "200", "/run/charon.log"])
    hits = [ln.split("] ", 1)[-1] for ln in text.splitlines()
            if "AUTHENTICATION_FAILED" in ln or "MAC mismatched" in ln or ("failed" in ln.lower() and "authentic" in ln.lower())]
    return hits[-1].strip() if code == 0 and hits else ""


DAEMONS = {"wireguard": _wireguard, "ipsec": _ipsec}


def handshake_checks(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle],
                     down: frozenset[str] = frozenset()) -> list[Check]:
    out = []
    for spec in lab.contract.crypto:
        if spec.tunnel in down:
            continue
        for end, other in ((spec.ends[0], spec.ends[1]), (spec.ends[1], spec.ends[0])):
            out.append(DAEMONS[spec.daemon](lab, runtime, handles, spec, end, other.node))
    return out


def wait_for_keys(lab: RenderedLab, runtime: Runtime, handles: dict[str, NodeHandle], down: frozenset[str],
                  seconds: float) -> None:
    """Until every encrypted tunnel has its keys (at most `seconds`), so that the pings do not race
    the key exchange on a slow machine: IPsec's SAs, WireGuard's handshakes. WireGuard shakes hands
    on the first packet, and retries a lost first try only after 5 s (REKEY_TIMEOUT): one packet
    across each WireGuard tunnel starts it."""
    from .verify import _ping
    address = {(e.node, e.ifname): e.address.split("/")[0] for t in lab.contract.tunnels for e in t.ends}
    for s in lab.contract.crypto:
        far = (s.ends[1].node, s.ends[1].ifname)
        if s.daemon == "wireguard" and s.tunnel not in down and far in address:
            threading.Thread(target=_ping, args=(handles[s.ends[0].node], address[far], 1, 1.0), daemon=True).start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(c.ok for c in handshake_checks(lab, runtime, handles, down)):
        time.sleep(0.25)


def mtu_checks(lab: RenderedLab, handles: dict[str, NodeHandle], down: frozenset[str] = frozenset()) -> list[Check]:
    """The derived MTU, end to end: from the first end, a DF ping of exactly the tunnel MTU crosses
    (through the cipher's framing and the underlay) and one byte more is refused."""
    out = []
    for spec in lab.contract.crypto:
        tunnel = next(t for t in lab.contract.tunnels if t.name == spec.tunnel)
        if spec.tunnel in down:
            continue
        a, b = tunnel.ends
        peer, source, label = b.address.split("/")[0], [], f"{a.ifname} MTU {tunnel.mtu}"
        if tunnel.policy:         # gateway to gateway inside the policy: LAN address to LAN address
            peer, mine = (_lan_address(lab, e.node) for e in (b, a))
            source, label = ["-I", mine], f"{spec.tunnel} MTU {tunnel.mtu}"
        ping = ["ping", "-n", "-c", "1", "-W", "2", "-M", "do", *source, "-s"]
        fits = handles[a.node].exec([*ping, str(tunnel.mtu - 28), peer])
        over = handles[a.node].exec([*ping, str(tunnel.mtu - 27), peer])
        problems = []
        if fits.returncode != 0:
            problems.append(f"a DF ping of {tunnel.mtu} bytes (the tunnel MTU) got no reply")
        # The kernel's XFRM takes what fits the underlay: policy-based IPsec's 1400 is userspace ESP's (ipsec0)
        bound = not tunnel.policy or handles[a.node].exec(["ip", "link", "show", "ipsec0"]).returncode == 0
        if over.returncode == 0 and bound:
            problems.append(f"a DF ping of {tunnel.mtu + 1} bytes crossed, so the MTU is not {tunnel.mtu}")
        out.append(Check("mtu", a.node, label, not problems, "; ".join(problems) or
                         f"a DF ping of {tunnel.mtu} bytes to {peer} crosses {spec.type}, {tunnel.mtu + 1} is refused "
                         f"({((over.stdout + over.stderr).strip().splitlines()[1:2] and 'message too long') or 'no reply'})"))
    return out


def _lan_address(lab: RenderedLab, node: str) -> str:
    lan = next(i for i in lab.contract.node(node).interfaces if i.role == "lan" and i.address)
    return (lan.address or "").split("/")[0]


def link_problems(kind: str | None, ttype_name: str) -> list[str]:
    ttype = tunnel_type(ttype_name)
    if kind in ttype.link_kinds:
        return []
    return [f"a {kind or 'plain'} device, expected {' or '.join(ttype.link_kinds)}"]


# --- the wire --------------------------------------------------------------------------------


def check_capture(lab: RenderedLab, handles: dict[str, NodeHandle], cap: CaptureSpec) -> Check:
    label = f"{cap.iface} {cap.tunnel} encrypted"
    spec = lab.contract.crypto_of(cap.tunnel)
    tunnel = next(t for t in lab.contract.tunnels if t.name == cap.tunnel)
    ttype = tunnel_type(tunnel.type, tunnel.policy)
    end = next((e for e in spec.ends if e.node == cap.node), None) if spec else None
    ports = (end.port, end.peer_port) if end else (0, 0)
    probe = Probe.new()
    socks = {"lan": _open_capture(handles[cap.lan_node].netns(), cap.lan_if),
             "underlay": _open_capture(handles[cap.node].netns(), cap.iface)}
    if cap.tunnel_if:             # policy-based IPsec has no tunnel interface
        socks["tun"] = _open_capture(handles[cap.node].netns(), cap.tunnel_if)
    inside = ("lan", "tun") if cap.tunnel_if else ("lan",)
    seen: dict[str, int] = {}
    wire: list[tuple[str, str, str, int, int]] = []      # (src, dst, signature or '', frame length, proto)
    clear: list[str] = []
    pair = socket.inet_aton(cap.src_address) + socket.inet_aton(cap.dst_address)
    marker = probe.payload[:24]
    try:
        for seq in range(1, 4):
            _send_probe(handles[cap.lan_node].netns(), cap.dst_address, probe, seq)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                for where, s in socks.items():
                    for frame in _drain(s):
                        _look(where, frame, cap, probe, ttype, ports, pair, marker, seen, wire, clear)
                if all(k in seen for k in inside) and any(w[2] for w in wire if w[0] == cap.outer_src):
                    break
                time.sleep(0.01)
            if all(k in seen for k in inside):
                break
        time.sleep(0.05)
        for frame in _drain(socks["underlay"]):      # the reply's way back, too
            _look("underlay", frame, cap, probe, ttype, ports, pair, marker, seen, wire, clear)
    finally:
        for s in socks.values():
            s.close()
    return Check("capture", cap.node, label, *_judge(cap, seen, wire, clear))


def _look(where: str, frame: bytes, cap: CaptureSpec, probe: Probe, ttype: object, ports: tuple[int, int],
          pair: bytes, marker: bytes, seen: dict[str, int], wire: list[tuple[str, str, str, int, int]],
          clear: list[str]) -> None:
    from .tunnels import TunnelType
    assert isinstance(ttype, TunnelType)
    if where == "tun":
        if _probe_in(frame, cap, probe):
            seen.setdefault("tun", len(frame))
        return
    if len(frame) < ETH_HLEN or frame[12:14] != b"\x08\x00":
        return
    if where == "lan":
        if _probe_in(frame[ETH_HLEN:], cap, probe):
            seen.setdefault("lan", len(frame))
        return
    body = frame[ETH_HLEN:]
    if marker in body:
        clear.append(f"verify's probe payload in clear in a {len(frame)}-byte frame")
    elif pair in body[20:]:
        clear.append(f"an inner header {cap.src_address} > {cap.dst_address} in clear in a {len(frame)}-byte frame")
    outer = _ip(body)
    if not outer or {outer[1], outer[2]} != {cap.outer_src, cap.outer_dst}:
        return
    local_first = ports if outer[1] == cap.outer_src else (ports[1], ports[0])
    sig = ttype.wire_signature(outer[0], outer[4], local_first) if hasattr(ttype, "wire_signature") else None
    wire.append((outer[1], outer[2], sig or "", len(frame), outer[0]))


def _judge(cap: CaptureSpec, seen: dict[str, int], wire: list[tuple[str, str, str, int, int]],
           clear: list[str]) -> tuple[bool, str]:
    problems = []
    if "lan" not in seen:
        problems.append(f"verify's echo request {cap.src_address} > {cap.dst_address} not seen on {cap.lan_node}:{cap.lan_if}")
    if "tun" not in seen and cap.tunnel_if:
        problems.append(f"verify's echo request not seen on {cap.node}:{cap.tunnel_if}")
    if clear:
        problems.append("cleartext on the underlay: " + "; ".join(sorted(set(clear))))
    plain = sorted({f"IP protocol {p} ({n} B)" for s, d, sig, n, p in wire if not sig})
    if plain:
        problems.append(f"unencrypted packets between {cap.outer_src} and {cap.outer_dst}: {', '.join(plain)}")
    out = [w for w in wire if w[0] == cap.outer_src and w[2]]
    sized = [w for w in out if w[3] == cap.underlay_frame_len]
    if not out:
        problems.append(f"no encrypted packet {cap.outer_src} > {cap.outer_dst} on {cap.node}:{cap.iface} while the "
                        "probe crossed")
    elif not sized:
        problems.append(f"encrypted packets of {sorted({w[3] for w in out})} bytes, none of the "
                        f"{cap.underlay_frame_len} bytes the probe's should be")
    kinds = sorted({w[2] for w in wire if w[2]})
    tun = f" and {cap.tunnel_if} ({seen['tun']} B raw IP)" if cap.tunnel_if and "tun" in seen else ""
    detail = "; ".join(problems) or (
        f"probe seen on {cap.lan_node}:{cap.lan_if} ({seen['lan']} B){tun}; "
        f"on {cap.iface} only {', '.join(kinds)} between {cap.outer_src} and {cap.outer_dst} ({len(wire)} packets, "
        f"the probe {cap.underlay_frame_len} B), no probe payload or inner header in clear")
    return not problems, detail
