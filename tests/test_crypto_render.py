"""Encrypted tunnels on the render side: `type:` alone on any intent, per-release syntax (oracle),
derived MTUs, ports and keys, lab-only keys reproducible, a user's key files never written."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clabgen import intent, keys, plan, tunnels, vyos_config
from clabgen.emu import vyos
from clabgen.errors import ClabgenError

from .conftest import LABS, run_clabgen
from .labutil import write_lab

MULTI_SITE = [p for p in sorted(LABS.glob("*/intent.yml")) if len(plan.build(intent.read_lab(p)).gateways) > 1]
TYPE_LINE = re.compile(r"type: (ipip|gre|wireguard|ipsec)\b")
RELEASE = {"vyos-1.2": "1.2", "vyos-1.4": "1.4", "vyos-1.5": "1.5"}


def _as(text: str, ttype: str) -> str:
    """The intent with every tunnel's type changed (a type added where it names none); the other
    type's options go, and a policy-based IPsec tunnel that becomes an interface gets a subnet."""
    data = yaml.safe_load(text)
    for i, t in enumerate(data.get("tunnels") or ()):
        t["type"] = ttype
        t.pop("ipsec" if ttype == "wireguard" else "wireguard", None)
        if "subnet" not in t and (t.get("ipsec") or {}).get("mode") != "policy":
            t["subnet"] = f"172.30.{i}.0/30"
    return yaml.safe_dump(data, sort_keys=False)


def test_x25519_rfc7748_vector_and_wg() -> None:
    # RFC 7748 section 6.1, Alice's key pair
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert keys.public_key(alice).hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    key = keys.lab_private_key("lab", "gw1")
    assert key == keys.lab_private_key("lab", "gw1") != keys.lab_private_key("lab", "gw2")
    if shutil.which("wg"):
        out = subprocess.run(["wg", "pubkey"], input=keys.b64(key) + "\n", capture_output=True, text=True).stdout
        assert out.strip() == keys.b64(keys.public_key(key))


def test_overheads_and_mtus() -> None:
    wg, ipsec = tunnels.WIREGUARD, tunnels.IPSEC
    assert wg.max_mtu(1500) == 1440 and wg.wire_len(84, 1440) == 20 + 8 + 32 + 96
    assert wg.wire_len(1440, 1440) == 1500
    # ESP in UDP: 62 + padding to 4 bytes; userspace ESP carries 1400 bytes, GRE takes 24 of them
    assert tunnels.esp_len(1438) == 1500 and tunnels.esp_len(1437) == 1500 and tunnels.esp_max_inner(1499) == 1434
    assert ipsec.max_mtu(9500) == ipsec.max_mtu(1500) == 1376 and ipsec.max_mtu(1400) == 1314
    assert ipsec.wire_len(84, 1376) == 172
    assert wg.wire_signature(17, b"\xca\x6c\xca\x6c\x00\x20\x00\x00\x04\x00\x00\x00", (51820, 51820)) == "WireGuard data"
    assert wg.wire_signature(17, b"\xca\x6c\xca\x6c\x00\x20\x00\x00\x04\x00\x00\x00", (51820, 51821)) is None
    assert wg.wire_signature(47, b"\x00\x00\x08\x00", (51820, 51820)) is None
    assert ipsec.wire_signature(50, b"\x00" * 16, (4500, 4500)) == "ESP"
    assert ipsec.wire_signature(17, b"\x11\x94\x11\x94\x00\x20\x00\x00\x12\x34\x56\x78", (4500, 4500)) == "ESP in UDP 4500"
    assert ipsec.wire_signature(47, b"\x00\x00\x08\x00", (4500, 4500)) is None


@pytest.mark.parametrize("ttype", ["wireguard", "ipsec"])
@pytest.mark.parametrize("source", MULTI_SITE, ids=lambda p: p.parent.name)
def test_type_alone_renders_oracle_clean(tmp_path: Path, source: Path, ttype: str, oracles: Path) -> None:
    lab = write_lab(tmp_path, _as(source.read_text(), ttype))
    configs = sorted((lab / "startup-conf").glob("*.cfg"))
    assert configs
    for cfg in configs:
        text = cfg.read_text()
        release = re.search(r"Release version: (\d\.\d)", text)
        assert release
        assert vyos_config.same_tree(text, cfg.with_suffix(".set").read_text()) == []
        result = subprocess.run([sys.executable, str(oracles / "vyos" / "vyos_syntax.py"), "--release",
                                 release.group(1), str(cfg), str(cfg.with_suffix(".set"))], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        parsed = vyos.load(cfg)                 # the emulation reads what it renders
        assert parsed.wireguard if ttype == "wireguard" else parsed.ipsec and parsed.ipsec.peers
        assert "lab-only" in text
    for sh in (lab / "linux").glob("*.sh"):
        assert subprocess.run(["sh", "-n", str(sh)]).returncode == 0


def test_derivations(tmp_path: Path) -> None:
    lab = (LABS / "hub3" / "intent.yml").read_text().replace("type: ipip", "type: wireguard").replace(
        "type: gre", "type: wireguard")
    p = plan.build(intent.read_lab(write_lab(tmp_path, lab) / "intent.yml"))
    hub = [t for t in p.tunnels if t.crypto and "gw-hub" in (t.ends[0].node, t.ends[1].node)]
    assert [t.crypto.end("gw-hub").port for t in hub if t.crypto] == [51820, 51821]   # per gateway, in order
    assert [e.ifname for t in hub for e in t.ends if e.node == "gw-hub"] == ["wg0", "wg1"]
    assert {t.mtu for t in p.tunnels} == {9000}          # VyOS 1.2 caps WireGuard at 9000
    keys_of = {t.crypto.end("gw-hub").public_key for t in hub if t.crypto}
    assert len(keys_of) == 1                             # one key pair per gateway (1.2: one key file)


def test_renders_are_reproducible_and_keys_lab_only(tmp_path: Path) -> None:
    for name in ("wireguard", "ipsec-gre"):
        result = run_clabgen("render", str(LABS / name / "intent.yml"), "--check")
        assert result.returncode == 0, result.stdout + result.stderr
    key = (LABS / "wireguard" / "startup-conf" / "gw1.wg.key").read_text().strip()
    assert key == keys.b64(keys.lab_private_key("wireguard", "gw1"))
    assert "/config/auth/wireguard/private.key" in (LABS / "wireguard" / "wireguard.clab.yml").read_text()


KEYED = """\
name: keyed
defaults: {gateway: {platform: vyos-1.4}}
underlay: {subnet: 172.12.1.0/24}
sites:
  - {name: a, lan: 10.1.5.0/24, gateway: {name: gw1, wireguard_key: keys/gw1.key}, servers: [s1]}
  - {name: b, lan: 10.1.8.0/24, gateway: {name: gw2, wireguard_key: keys/gw2.key}, servers: [s2]}
  - {name: c, lan: 10.1.9.0/24, gateway: gw3, servers: [s3]}
tunnels:
  - {type: wireguard, endpoints: [gw1, gw2], subnet: 1.1.1.0/30, wireguard: {psk: keys/wg.psk}}
  - {type: ipsec, endpoints: [gw2, gw3], subnet: 1.1.2.0/30, ipsec: {psk: keys/ipsec.psk}}
"""


def keyed_lab(tmp_path: Path, *, write: bool = False, platform: str = "vyos-1.4",
              name: str = "keyed") -> tuple[Path, dict[str, str]]:
    """A lab whose keys and PSKs come from files (made here); returns the lab dir and the secrets."""
    from clabgen import pipeline
    secrets = {"gw1.key": keys.b64(bytes(range(32))), "gw2.key": keys.b64(bytes(range(1, 33))),
               "wg.psk": keys.b64(bytes(range(2, 34))), "ipsec.psk": "not-a-lab-psk-4242"}
    lab = tmp_path / name
    (lab / "keys").mkdir(parents=True)
    for file, value in secrets.items():
        (lab / "keys" / file).write_text(value + "\n")
    (lab / "intent.yml").write_text(KEYED.replace("vyos-1.4", platform).replace("name: keyed", f"name: {name}")
                                    + ("write_secrets: true\n" if write else ""))
    pipeline.render_intent(lab / "intent.yml")
    return lab, secrets


@pytest.mark.parametrize("platform", ["vyos-1.2", "vyos-1.4"])
def test_key_files_never_land_in_rendered_files(tmp_path: Path, platform: str) -> None:
    lab, secrets = keyed_lab(tmp_path, platform=platform)
    rendered = [p for p in lab.rglob("*") if p.is_file() and "keys" not in p.parts]
    for p in rendered:
        text = p.read_text(errors="replace")
        for value in secrets.values():
            assert value not in text, f"{p} holds a secret"
    gw2 = (lab / "startup-conf" / "gw2.cfg").read_text()
    assert "/* clabgen-secret preshared-key keys/wg.psk */" in gw2
    assert "clabgen-secret " + ("pre-shared-secret" if platform == "vyos-1.2" else "secret") + " keys/ipsec.psk" in gw2
    if platform == "vyos-1.2":      # the key file is bound where VyOS 1.2 reads it
        assert "./keys/gw2.key:/config/auth/wireguard/private.key:ro" in next(lab.glob("*.clab.yml")).read_text()
    else:
        assert "/* clabgen-secret private-key keys/gw2.key */" in gw2
    public = keys.b64(keys.public_key(base64.b64decode(secrets["gw2.key"])))
    assert public in (lab / "startup-conf" / "gw1.cfg").read_text()     # public keys are derived and written


def test_write_secrets_puts_them_in(tmp_path: Path) -> None:
    lab, secrets = keyed_lab(tmp_path, write=True)
    gw2 = (lab / "startup-conf" / "gw2.cfg").read_text()
    assert f"private-key {secrets['gw2.key']}" in gw2 and f"secret {secrets['ipsec.psk']}" in gw2
    assert "clabgen-secret" not in gw2 and "lab-only" not in gw2


def test_bad_secret_files_are_named_not_shown(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "gw1.key").write_text("this is not a key but a secret sentence\n")
    (tmp_path / "keys" / "ipsec.psk").write_text("short\n")
    text = KEYED.replace("keys/wg.psk", "keys/missing.psk")
    path = tmp_path / "intent.yml"
    path.write_text(text)
    with pytest.raises(ClabgenError) as err:
        plan.build(intent.read_lab(path))
    messages = "\n".join(str(p) for p in err.value.problems)
    assert "keys/gw1.key does not hold one base64 32-byte key" in messages
    assert "missing.psk: No such file" in messages or "missing.psk" in messages
    assert "IPsec PSK file" in messages and "short" not in messages.replace("keys/ipsec.psk", "")
    assert "secret sentence" not in messages


@pytest.mark.parametrize(("snippet", "expected"), [
    ("wireguard: {ports: [51820, 51820]}}\n  - {type: wireguard, endpoints: [gw1, gw3], subnet: 1.1.3.0/30, "
     "wireguard: {ports: [51820, 51830]}",
     "gw1 listens on port 51820 for two WireGuard tunnels"),
    ("ipsec: {mode: gre}", "'ipsec' options on a tunnel of type 'wireguard'"),
    ("wireguard: {psk: 'a b'}", "is not a usable file path"),
])
def test_bad_options(tmp_path: Path, snippet: str, expected: str) -> None:
    text = KEYED.replace("wireguard_key: keys/gw1.key", "address: 10.1.5.1").replace(
        "wireguard_key: keys/gw2.key", "address: 10.1.8.1").replace("wireguard: {psk: keys/wg.psk}", snippet)
    text = text.replace("ipsec: {psk: keys/ipsec.psk}", "")
    path = tmp_path / "intent.yml"
    path.write_text(text)
    with pytest.raises(ClabgenError) as err:
        plan.build(intent.read_lab(path))
    assert any(expected in str(p) for p in err.value.problems), err.value


EMU_CASES = [
    # (lab, release edit: old, new, expected message)
    ("wireguard", "            pubkey ", "            public-key ", "not VyOS 1.2 syntax: a peer's key is `pubkey` in 1.2"),
    ("wireguard", "        port 51820\n", "        port 51820\n        private-key x\n",
     "not VyOS 1.2 syntax: VyOS 1.2 reads the key from /config/auth/wireguard/private.key"),
    ("wireguard", "        port 51820\n", "        port 70000\n", "interfaces wireguard wg0 port: invalid value '70000'"),
]


def test_emulation_refuses_at_file_line(tmp_path: Path) -> None:
    cfg = tmp_path / "gw1.cfg"
    base = (LABS / "wireguard" / "startup-conf" / "gw1.cfg").read_text()
    for old, new, expected in [e[1:] for e in EMU_CASES if e[0] == "wireguard"]:
        cfg.write_text(base.replace(old, new, 1))
        with pytest.raises(ClabgenError) as err:
            vyos.load(cfg)
        assert any(expected in str(p) and str(p).startswith(f"{cfg}:") for p in err.value.problems), err.value
    v14 = (LABS / "ipsec-gre" / "startup-conf" / "gw1.cfg").read_text()
    secret = re.search(r"secret (lab-only-\w+)", v14)
    assert secret
    cfg.write_text(v14.replace("        interface eth2\n", "        ipsec-interfaces {\n            interface eth2\n        }\n"))
    with pytest.raises(ClabgenError) as err:
        vyos.load(cfg)
    assert "not VyOS 1.4 syntax: `vpn ipsec interface ethN` since VyOS 1.3" in str(err.value)
    cfg.write_text(v14.replace(f"secret {secret.group(1)}", "/* clabgen-secret secret keys/x.psk */"))
    with pytest.raises(ClabgenError) as err:
        vyos.load(cfg)
    assert "no pre-shared secret for this peer" in str(err.value) and secret.group(1) not in str(err.value)
    parsed = vyos.load(LABS / "ipsec-gre" / "startup-conf" / "gw1.cfg")
    assert secret.group(1) not in repr(parsed.ipsec)          # secrets stay out of reprs (logs)


POLICY_HUB = """\
name: polhub
defaults:
  gateway: {platform: vyos-1.2}
underlay: {subnet: 192.0.2.0/24}
sites:
  - {name: hub, lan: 10.7.0.0/24, gateway: hub, servers: [s0]}
  - {name: a, lan: 10.7.1.0/24, gateway: gwa, servers: [s1]}
  - {name: b, lan: 10.7.2.0/24, gateway: gwb, servers: [s2]}
tunnels:
  - {type: ipsec, ipsec: {mode: policy}, endpoints: [hub, gwa]}
  - {type: ipsec, ipsec: {mode: policy}, endpoints: [hub, gwb]}
"""


def test_policy_based_ipsec_plan_and_render(tmp_path: Path, oracles: Path) -> None:
    """Hub and spokes over policy-based IPsec: each end's policy is its LAN to the peer's, mirrored;
    no tunnel interface, static route or tunnel ping; spoke to spoke is predicted unreachable (no
    transit through a policy); 1.2 and 1.4 render oracle-clean and the emulation reads the prefixes."""
    lab = write_lab(tmp_path, POLICY_HUB)
    p = plan.build(intent.read_lab(lab / "intent.yml"))
    hub = p.node("hub")
    assert [(x.tunnel, [str(n) for n in x.local], [str(n) for n in x.remote]) for x in hub.policies] == [
        ("hub-gwa-ipsec", ["10.7.0.0/24"], ["10.7.1.0/24"]), ("hub-gwb-ipsec", ["10.7.0.0/24"], ["10.7.2.0/24"])]
    assert [(x.local, x.remote) for x in p.node("gwa").policies] == [(hub.policies[0].remote, hub.policies[0].local)]
    assert not hub.static_routes and all(i.role != "tunnel" for i in hub.interfaces)
    assert {(x.src, x.dst) for x in p.pings} == {("s0", "s1"), ("s0", "s2"), ("s1", "s0"), ("s2", "s0")}
    assert "s1 cannot reach s2: no tunnel path between their sites" in p.warnings
    assert all(t.policy and t.mtu == 1400 for t in p.tunnels)
    assert [c.underlay_frame_len for c in p.captures] == [14 + tunnels.esp_len(84)] * 2 == [162, 162]
    for release in ("1.2", "1.4"):
        text = POLICY_HUB.replace("vyos-1.2", f"vyos-{release}")
        (tmp_path / release).mkdir()
        out = write_lab(tmp_path / release, text)
        cfg = out / "startup-conf" / "hub.cfg"
        result = subprocess.run([sys.executable, str(oracles / "vyos" / "vyos_syntax.py"), "--release", release,
                                 str(cfg), str(cfg.with_suffix(".set"))], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        peers = vyos.load(cfg).ipsec.peers        # type: ignore[union-attr]
        assert [(t.local_ts, t.remote_ts, t.protocol) for peer in peers for t in peer.tunnels] == [
            (("10.7.0.0/24",), ("10.7.1.0/24",), None), (("10.7.0.0/24",), ("10.7.2.0/24",), None)]
        assert not re.search(r"(?m)^(protocols \{|    tunnel tun)", cfg.read_text())   # no static route, no interface


def test_esp_framing_per_cipher() -> None:
    """AES-GCM: IV 8, 4-byte padding, ICV 16; AES-CBC: IV 16, 16-byte blocks, the HMAC's ICV."""
    assert tunnels.esp_len(84) == 20 + 8 + 8 + 8 + 88 + 16
    assert tunnels.esp_len(84, ("aes256", "sha256")) == 20 + 8 + 8 + 16 + 96 + 16 == 164
    assert tunnels.esp_len(84, ("aes128", "sha1")) == 20 + 8 + 8 + 16 + 96 + 12
    assert tunnels.esp_max_inner(1500, ("aes128", "sha512")) == 1406   # 1406 + 2 -> 1408 (88 blocks) + 32 + 52 = 1492
    assert tunnels.IPSEC_POLICY.max_mtu(1500) == 1400 and tunnels.IPSEC_POLICY.max_mtu(1200) == 1138


def test_a_policy_tunnel_has_no_fault_of_its_own() -> None:
    """No "tunnel down" scenario for a policy-based tunnel (no interface to take down); asking for
    one names why and what to do instead; its underlay links keep their scenarios."""
    from clabgen import faults
    from clabgen.contract import LabContract
    contract = LabContract.load(LABS / "ipsec-policy" / "expected.json")
    assert [s.name for s in contract.scenarios] == [f"underlay gw{i}:eth2 down" for i in (1, 2, 3)]
    with pytest.raises(ClabgenError, match="tunnel gw1-gw2 is policy-based IPsec: it has no interface to take down"):
        faults.resolve(contract, "gw1-gw2")
    assert faults.resolve(contract, "gw1:underlay").links == (("gw1", "eth2"),)
