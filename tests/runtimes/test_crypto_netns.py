"""Encrypted tunnels running: both labs on netns (handshakes, wire, MTU), faults that must fail
verify (a wrong key or PSK on one side, a deliberately unencrypted variant), key files at deploy
time, the Linux part-2 scripts, and nothing left behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clabgen import labdir, netlink
from clabgen.dataplane import kernel_supports
from clabgen.emu.crypto import CHARON_BIN, wireguard_go
from clabgen.runtimes import get
from clabgen.runtimes.base import quiet
from clabgen.verify import verify

from ..labutil import lab_name, residue, unique_lab, write_lab
from ..test_crypto_render import keyed_lab

pytestmark = pytest.mark.netns
if os.geteuid() != 0:
    pytest.skip("needs root (network namespaces)", allow_module_level=True)
WG_MISSING = [why for ok, why in ((shutil.which("wg"), "wg (wireguard-tools) is missing"),
                                  (wireguard_go(), "wireguard-go is missing (make wireguard-go)")) if not ok]
IPSEC_MISSING = [] if os.access(CHARON_BIN, os.X_OK) and shutil.which("swanctl") else \
    ["strongSwan is missing (make deps: strongswan-charon, strongswan-swanctl, libcharon-extra-plugins)"]
FRR_MISSING = [] if os.access("/usr/lib/frr/ospfd", os.X_OK) else ["FRR is missing (make deps)"]


def _need(*missing: list[str]) -> None:
    reasons = [m for group in missing for m in group]
    if reasons:
        pytest.skip("; ".join(reasons))


def _deploy_verify(lab: Path, wait: float = 60.0) -> tuple[list[str], object]:
    rendered = labdir.load(lab)
    rt = get("netns")
    rt.deploy(rendered, quiet)
    checks = verify(rendered, rt, wait=wait)
    return [f"{c.group} {c.node} {c.name}: {c.detail}" for c in checks if not c.ok], checks


# What a daemon would leave on the host if it ever ran outside its gateway's private /run.
HOST_RUN = ("/run/wireguard", "/run/charon.pid", "/run/charon.vici", "/run/charon.ctl", "/run/starter.charon.pid")


def _lab_pids(name: str) -> set[int]:
    """Every process in the lab's namespaces (wireguard-go, charon, FRR, the dataplane)."""
    pids: set[int] = set()
    for ns in [n for n in netlink.ns_list() if n.startswith(f"clab-{name}-")]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids |= {int(p) for p in out.split()}
    return pids


def _alive(pids: set[int]) -> list[str]:
    out = []
    for pid in sorted(pids):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                continue        # dead: a daemon this test process started in-process and has not reaped
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out.append(f"pid {pid} {args.strip()}")
    return out


def _host_crypto_devices() -> list[str]:
    """TUN devices of the daemons (wg0, ipsec0) in the host namespace: there must never be one."""
    import json
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]")
    return [link["ifname"] for link in links if link["ifname"] in ("wg0", "ipsec0")]


def _destroy(lab: Path) -> None:
    """Destroy, then prove nothing is left: no namespace, state (sockets, logs, secrets), daemon,
    TUN device or file under the host's /run."""
    name = lab_name(lab)
    pids = _lab_pids(name)
    daemons = [a for a in _alive(pids) if "wireguard-go" in a or "charon" in a]
    get("netns").destroy(labdir.load(lab), quiet)
    assert residue(name) == []
    assert _alive(pids) == [], "processes of the lab outlived destroy"
    assert not Path(f"/run/clabgen/{name}").exists()
    assert [p for p in HOST_RUN if os.path.exists(p)] == []
    assert _host_crypto_devices() == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"/run/clabgen/{name}" not in mounts
    _destroyed_daemons.extend(daemons)


_destroyed_daemons: list[str] = []     # the daemons the last destroys stopped (a test's proof they ran)


@pytest.mark.parametrize("name", ["wireguard", "ipsec-gre", "ipsec-policy"])
def test_lab_deploys_and_verifies(tmp_path: Path, name: str) -> None:
    _need(WG_MISSING if name == "wireguard" else IPSEC_MISSING, FRR_MISSING if name == "ipsec-gre" else [])
    lab = unique_lab(tmp_path, name)
    try:
        failed, checks = _deploy_verify(lab)
        assert failed == []
        groups = {c.group for c in checks}            # type: ignore[attr-defined]
        assert {"crypto", "mtu", "capture"} <= groups
        if name == "ipsec-gre":
            assert "routing" in groups
        if name == "ipsec-policy":
            crypto = [c.detail for c in checks if c.group == "crypto"]   # type: ignore[attr-defined]
            assert sorted(d.split("policies ")[1] for d in crypto) == sorted(
                f"10.1.{a}.0/24 === 10.1.{b}.0/24" for a, b in ((1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1))), crypto
            assert all("1401 is refused" in c.detail for c in checks if c.group == "mtu")  # type: ignore[attr-defined]
    finally:
        _destroyed_daemons.clear()
        _destroy(lab)
    daemon = "charon" if name.startswith("ipsec") else None if kernel_supports("wireguard") else "wireguard-go"
    assert daemon is None or any(daemon in d for d in _destroyed_daemons), f"no {daemon} ran in the lab's namespaces"


MIXED = """\
name: mixed
underlay: {subnet: 172.16.0.0/24}
sites:
  - {name: hub, lan: 10.0.0.0/24, gateway: gw-hub, servers: [server-hub]}
  - {name: spoke, count: 3, lans: 10.1.0.0/16, gateway: gw, servers: [server]}
tunnels:
  - {pattern: hub-spoke, hub: gw-hub, type: wireguard, pool: 172.31.0.0/24}
  - {pattern: mesh, gateways: [gw1, gw2, gw3], type: ipsec, pool: 172.31.1.0/24, prefix: 31}
routing: ospf
"""


def test_patterns_mix_wireguard_and_ipsec_under_ospf_on_vyos12(tmp_path: Path) -> None:
    """A lab of our own, not a checked-in one: WireGuard from the hub, a GRE-over-IPsec mesh among
    the spokes (/31s), OSPF over both, on VyOS 1.2 (whose configs must state the IPsec tunnels'
    MTU: its GRE default would be the underlay's minus 24)."""
    _need(WG_MISSING, IPSEC_MISSING, FRR_MISSING)
    lab = write_lab(tmp_path, MIXED, tag="x")
    try:
        failed, checks = _deploy_verify(lab)
        assert failed == []
        mtus = {c.detail for c in checks if c.group == "mtu"}     # type: ignore[attr-defined]
        assert any("1376 bytes" in d and "crosses ipsec" in d for d in mtus), mtus
        assert any("crosses wireguard" in d for d in mtus), mtus
    finally:
        _destroy(lab)


POLICY_MIXED = """\
name: polmix
defaults:
  gateway: {platform: vyos-1.2}
underlay: {subnet: 172.16.9.0/24}
sites:
  - {name: s1, lan: 10.9.1.0/24, gateway: gw1, servers: [h1]}
  - {name: s2, lan: 10.9.2.0/24, gateway: gw2, servers: [h2]}
  - {name: s3, lan: 10.9.3.0/24, gateway: gw3, servers: [h3]}
  - {name: s4, lan: 10.9.4.0/24, gateway: gw4, servers: [h4]}
tunnels:
  - {type: ipsec, ipsec: {mode: policy, esp: {encryption: aes256, hash: sha256, pfs: 0}}, endpoints: [gw1, gw2]}
  - {type: ipsec, ipsec: {mode: policy}, endpoints: [gw1, gw3]}
  - {type: gre, endpoints: [gw2, gw3], subnet: 172.31.9.0/30}
  - {type: ipip, endpoints: [gw3, gw4], subnet: 172.31.9.4/30}
"""


def test_policy_based_ipsec_beside_plain_tunnels_on_vyos12(tmp_path: Path) -> None:
    """A lab of our own on VyOS 1.2 (a `tunnel N` per prefix pair): policy-based IPsec between
    gw1 and its two neighbours, a GRE and an IPIP tunnel behind them. Policies carry their two LANs
    only: h1 reaches h2 and h3 encrypted (AES-CBC without PFS on one of them), h2 reaches h4 through
    the GRE and IPIP tunnels, and h1 <-> h4 is predicted unreachable (its packets would need gw3 to
    forward gw1's LAN over a tunnel the policy does not cover) and is so on the wire."""
    _need(IPSEC_MISSING)
    lab = write_lab(tmp_path, POLICY_MIXED, tag="p")
    contract = labdir.load(lab).contract
    assert {w for w in contract.warnings if "h1" in w and "h4" in w} == {
        "h1 cannot reach h4: no tunnel path between their sites", "h4 cannot reach h1: no tunnel path between their sites"}
    assert "tunnel 1 {" in (lab / "startup-conf" / "gw1.cfg").read_text()
    name = lab_name(lab)
    try:
        failed, checks = _deploy_verify(lab)
        assert failed == []
        pings = {(c.node, c.name.split()[1]) for c in checks if c.group == "ping"}   # type: ignore[attr-defined]
        assert {("h2", "h4"), ("h4", "h2"), ("h1", "h2"), ("h1", "h3")} <= pings and ("h1", "h4") not in pings
        crypto = [c.detail for c in checks if c.group == "crypto"]      # type: ignore[attr-defined]
        assert len(crypto) == 4 and sum("ESP:AES_CBC-256/HMAC_SHA2_256_128" in d for d in crypto) == 2, crypto
        lost = subprocess.run(["ip", "netns", "exec", f"clab-{name}-h1", "ping", "-n", "-c", "2", "-W", "1",
                               "10.9.4.10"], capture_output=True, text=True)
        assert lost.returncode != 0, lost.stdout
    finally:
        _destroy(lab)


def _swap_secret(cfg: Path, pattern: str, new: str) -> None:
    text = cfg.read_text()
    text, n = re.subn(pattern, new, text, count=1)
    assert n == 1
    cfg.write_text(text)


def test_wrong_psk_on_one_side_fails_naming_the_handshake(tmp_path: Path) -> None:
    _need(IPSEC_MISSING, FRR_MISSING)
    lab = unique_lab(tmp_path, "ipsec-gre")
    _swap_secret(lab / "startup-conf" / "gw2.cfg", r"secret lab-only-\w+\n(?=\s+\}\s+psk gw2-gw3)",
                 "secret lab-only-not-the-other-sides\n")
    try:
        failed, _ = _deploy_verify(lab, wait=8)
        handshake = [f for f in failed if f.startswith(("crypto gw1 IPsec", "crypto gw2 IPsec"))]
        assert handshake and all("the IKE handshake fails" in f for f in handshake), failed
        # charon's own words on both sides (its log is line-flushed): the initiator is told, the responder's MAC fails
        assert any("charon: received AUTHENTICATION_FAILED" in f for f in handshake), handshake
        assert any("MAC mismatched" in f for f in handshake), handshake
        assert "not-the-other-sides" not in "\n".join(failed)          # a PSK is never shown
    finally:
        _destroy(lab)


def test_wrong_key_on_one_side_fails_naming_the_handshake(tmp_path: Path) -> None:
    _need(WG_MISSING)
    lab = unique_lab(tmp_path, "wireguard")
    key = lab / "startup-conf" / "gw2.wg.key"
    key.write_text("aGVsbG8gdGhpcyBpcyB0aGUgd3Jvbmcga2V5IDEyMzQ=\n")   # not the key gw1 expects
    try:
        failed, _ = _deploy_verify(lab, wait=5)
        assert any(f.startswith("crypto gw1 wg0 wireguard handshake: no handshake with gw2") for f in failed), failed
        assert any(f.startswith("ping server1") for f in failed)
    finally:
        _destroy(lab)


def test_unencrypted_variant_fails_the_wire_check(tmp_path: Path) -> None:
    """The same lab with its `vpn` block cut out of both configs: GRE in clear. verify must see it."""
    _need(IPSEC_MISSING, FRR_MISSING)
    lab = unique_lab(tmp_path, "ipsec-gre")
    for cfg in (lab / "startup-conf").glob("*.cfg"):
        text = cfg.read_text()
        cfg.write_text(re.sub(r"(?ms)^vpn \{.*?^\}\n", "", text))
    try:
        failed, _ = _deploy_verify(lab, wait=20)
        wire = [f for f in failed if f.startswith("capture")]
        assert wire and all("cleartext on the underlay" in f and "IP protocol 47" in f for f in wire), failed
        crypto = [f for f in failed if f.startswith("crypto")]
        assert len(crypto) == 6 and all("no IPsec daemon answers" in f for f in crypto), crypto
    finally:
        _destroy(lab)


def test_key_files_reach_the_lab_only_at_deploy(tmp_path: Path) -> None:
    _need(WG_MISSING, IPSEC_MISSING)
    import uuid
    lab, secrets = keyed_lab(tmp_path, name=f"k{uuid.uuid4().hex[:5]}-keyed")
    name = lab_name(lab)
    try:
        failed, _ = _deploy_verify(lab)
        assert failed == []
        state = Path("/run/clabgen") / name
        holders = sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file()
                         and any(v.encode() in p.read_bytes() for v in secrets.values()))
        assert holders == ["crypto/gw2/swanctl.conf", "crypto/gw3/swanctl.conf", "secrets/gw1.cfg",
                           "secrets/gw2.cfg", "secrets/gw3.cfg"]
        for h in holders:
            assert (state / h).stat().st_mode & 0o077 == 0
        assert (state / "secrets").stat().st_mode & 0o077 == 0
    finally:
        _destroy(lab)
    assert not (Path("/run/clabgen") / name).exists()


# --- the Linux part-2 scripts: each gateway on its own "host" (a namespace), userspace daemons ---


def _hosts(tag: str, n: int, prefix: str) -> list[str]:
    import ipaddress
    hosts = [f"clabgen-t-{tag}-h{i}" for i in range(n)]
    br = f"clabgen-t-{tag}-br"
    netlink.ns_create(br)
    subprocess.run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", br, "link", "set", "br0", "up"], check=True)
    for i, h in enumerate(hosts):
        netlink.ns_create(h)
        netlink.veth(h, "ens33", br, f"p{i}", 1500)
        subprocess.run(["ip", "-n", br, "link", "set", f"p{i}", "master", "br0", "up"], check=True)
        netlink.configure(h, "ens33", addresses=[ipaddress.IPv4Interface(f"{prefix}{10 + i}/24")])
    return [*hosts, br]


def _script(host: str, lab: Path, gw: str, *args: str) -> tuple[int, str]:
    import sys
    env = {**os.environ, "CLABGEN_PYTHON": sys.executable, "WIREGUARD_GO": wireguard_go() or "wireguard-go"}
    log = lab / f"{gw}.log"
    with log.open("w+") as out:      # FRR's daemons keep stderr: never a pipe here
        r = subprocess.run(["nsenter", f"--net=/run/netns/{host}", "sh", str(lab / "linux" / f"{gw}.sh"), *args],
                           stdout=out, stderr=subprocess.STDOUT, env=env, timeout=120)
        out.seek(0)
        return r.returncode, out.read()


@pytest.mark.parametrize(("name", "gateways", "prefix", "server", "address"), [
    ("wireguard", ["gw1", "gw2"], "172.12.1.", "server1", "10.1.8.10"),
    ("ipsec-gre", ["gw1", "gw2", "gw3"], "192.0.2.", "host1", "10.1.2.10"),
    ("ipsec-policy", ["gw1", "gw2", "gw3"], "192.0.2.", "host1", "10.1.2.10"),
])
def test_linux_scripts(tmp_path: Path, name: str, gateways: list[str], prefix: str, server: str, address: str) -> None:
    _need(WG_MISSING if name == "wireguard" else IPSEC_MISSING, FRR_MISSING if name == "ipsec-gre" else [])
    import time
    import uuid
    if not shutil.which("nsenter") or not shutil.which("unshare"):
        pytest.skip("needs nsenter and unshare (util-linux)")
    lab = unique_lab(tmp_path, name)
    lname = lab_name(lab)
    spaces = _hosts(uuid.uuid4().hex[:6], len(gateways), prefix)
    try:
        for host, gw in zip(spaces, gateways):
            rc, out = _script(host, lab, gw, "up", "--userspace")
            assert rc == 0, out
        ok = False
        for _ in range(40):
            r = subprocess.run(["ip", "netns", "exec", f"{lname}-{server}", "ping", "-n", "-c", "1", "-W", "1", address],
                               capture_output=True, text=True)
            if r.returncode == 0:
                ok = "ttl=62" in r.stdout
                break
            time.sleep(0.5)
        assert ok, "no reply with ttl=62 across the encrypted tunnel"
        if name.startswith("ipsec"):     # userspace ESP: the initiator's re-initiation helper runs beside charon
            state = Path(f"/run/clabgen/{lname}-gw1-linux")
            assert (state / "run" / "ipsec-kick.pid").exists() and not (Path(f"/run/clabgen/{lname}-gw3-linux") /
                                                                          "run" / "ipsec-kick.pid").exists()
    finally:
        for host, gw in zip(spaces, gateways):
            _script(host, lab, gw, "down")
        for ns in spaces:
            netlink.ns_delete(ns)
    assert [n for n in netlink.ns_list() if n.startswith(lname)] == []
    assert not any(p.name.startswith(lname) for p in Path("/run/clabgen").glob("*")) if Path("/run/clabgen").exists() \
        else True
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert lname not in procs and "clabgen.emu.ipsec_kick" not in procs
