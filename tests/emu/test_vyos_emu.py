"""The VyOS emulation's reading of config.boot: what it applies, what it lists as not applied, and
every invalid value as FILE:LINE: path: message. Configs are rendered from the checked-in labs, then
one line is edited by hand, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import netlink, pipeline
from clabgen.dataplane import kernel_supports
from clabgen.emu import RouteFacts, boot, vyos
from clabgen.emu import apply as emu_apply
from clabgen.errors import ClabgenError, RuntimeFailure
from clabgen.vyos_config import parse_boot

from ..conftest import LABS, ROOT

ADDRESS_HINT = "(VyOS accepts an IPv4 or IPv6 address/prefix, dhcp or dhcpv6)"
ENCAP_12 = "gre, gre-bridge, ip6gre, ip6ip6, ipip, ipip6, sit"


def render(tmp_path: Path, lab: str) -> Path:
    """labs/<lab> rendered afresh into tmp_path; returns its startup-conf directory."""
    out = tmp_path / lab
    pipeline.render_intent(LABS / lab / "intent.yml", out)
    return out / "startup-conf"


@pytest.fixture
def ipip(tmp_path: Path) -> Path:
    """gw1's config.boot of labs/ipip (VyOS 1.2), freshly rendered."""
    return render(tmp_path, "ipip") / "gw1.cfg"


@pytest.fixture
def ipip14(tmp_path: Path) -> Path:
    """gw1's config.boot of labs/ipip-vyos14 (VyOS 1.4), freshly rendered."""
    return render(tmp_path, "ipip-vyos14") / "gw1.cfg"


def edit(cfg: Path, old: str, new: str) -> int:
    """Replace the one occurrence of `old` (whole lines); returns the 1-based line where `new` starts."""
    text = cfg.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {cfg}"
    cfg.write_text(text.replace(old, new))
    return text[:text.index(old)].count("\n") + 1


def line_of(cfg: Path, needle: str) -> int:
    lines = cfg.read_text().splitlines()
    found = [n for n, line in enumerate(lines, start=1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def problems(cfg: Path) -> list[str]:
    with pytest.raises(ClabgenError) as err:
        vyos.load(cfg)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize("path", sorted(LABS.glob("*/startup-conf/*.cfg")), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_checked_in_configs_are_valid(path: Path) -> None:
    cfg = vyos.load(path)
    # static labs: routes; routing labs: what FRR runs; ethernets and lo at least
    policy_based = cfg.ipsec is not None and any(t.remote_ts for p in cfg.ipsec.peers for t in p.tunnels)
    assert (cfg.tunnels or cfg.wireguard or policy_based) and (cfg.routes or cfg.routing.uses_frr or policy_based)
    assert len(cfg.interfaces) >= 3
    assert set(cfg.ignored) <= {"system", "service"}


# --- invalid values: the deploy must stop at FILE:LINE -------------------------------------------

INVALID_12 = [
    ("address 10.1.5.1/24", "address 10.1.5.300/24",
     f"interfaces ethernet eth1 address: invalid value '10.1.5.300/24': 10.1.5.300 is not an IPv4 or IPv6 address "
     f"{ADDRESS_HINT}"),
    ("address 10.1.5.1/24", "address 10.1.5.1/99",
     f"interfaces ethernet eth1 address: invalid value '10.1.5.1/99': prefix length 99 is out of range 0..32 {ADDRESS_HINT}"),
    ("address 10.1.5.1/24", "address 10.1.5.0/24",
     "interfaces ethernet eth1 address: invalid value '10.1.5.0/24': 10.1.5.0 is the network address of 10.1.5.0/24, "
     f"not a host address {ADDRESS_HINT}"),
    ("address 10.1.5.1/24", "address 10.1.5.1",
     "interfaces ethernet eth1 address: invalid value '10.1.5.1': no prefix length (write address/prefix, e.g. "
     f"10.1.5.1/24) {ADDRESS_HINT}"),
    ("address 1.1.1.1/24", "address dhcp",
     "interfaces tunnel tun0 address: invalid value 'dhcp': only ethernet interfaces take dhcp or dhcpv6 "
     "(VyOS accepts an IPv4 or IPv6 address/prefix)"),
    ("encapsulation ipip", "encapsulation bogus",
     f"interfaces tunnel tun0 encapsulation: invalid value 'bogus': not an encapsulation VyOS knows (VyOS 1.2 accepts {ENCAP_12})"),
    ("encapsulation ipip", "encapsulation gretap",     # gretap arrived in 1.3; 1.2 called it gre-bridge
     f"interfaces tunnel tun0 encapsulation: invalid value 'gretap': not available in VyOS 1.2 (VyOS 1.2 accepts {ENCAP_12})"),
    ("remote-ip 172.12.1.11", "remote-ip 172.12.1",
     "interfaces tunnel tun0 remote-ip: invalid value '172.12.1': 172.12.1 is not an IPv4 or IPv6 address"),
    ("local-ip 172.12.1.10", "local-ip 2001:db8::10",
     "interfaces tunnel tun0 local-ip: invalid value '2001:db8::10': encapsulation ipip needs an IPv4 address"),
    ("route 10.1.8.0/24", "route 10.1.8.1/24",
     "protocols static route: invalid value '10.1.8.1/24': host bits set (the network is 10.1.8.0/24)"),
    ("route 10.1.8.0/24", "route 2001:db8::/32",
     "protocols static route: invalid value '2001:db8::/32': an IPv6 prefix (IPv6 static routes go under `route6`)"),
    ("next-hop 1.1.1.2", "next-hop 1.1.1.256",
     "protocols static route 10.1.8.0/24 next-hop: invalid value '1.1.1.256': 1.1.1.256 is not an IPv4 address"),
    ("next-hop 1.1.1.2", "next-hop 2001:db8::2",
     "protocols static route 10.1.8.0/24 next-hop: invalid value '2001:db8::2': 2001:db8::2 is not an IPv4 address"),
    ("ethernet eth1", "ethernet eth-one",
     "interfaces ethernet: invalid value 'eth-one': not an interface name VyOS accepts here (ethN or lanN)"),
    ("        duplex auto\n        smp-affinity auto\n        speed auto\n    }\n    ethernet eth2",
     "        mtu 9500\n        smp-affinity auto\n        speed auto\n    }\n    ethernet eth2",   # 1.2 stops at 9000
     "interfaces ethernet eth1 mtu: invalid value '9500': out of range (VyOS 1.2 accepts 68..9000)"),
    ("        duplex auto\n        smp-affinity auto\n        speed auto\n    }\n    ethernet eth2",
     "        mtu jumbo\n        smp-affinity auto\n        speed auto\n    }\n    ethernet eth2",
     "interfaces ethernet eth1 mtu: invalid value 'jumbo': not an integer (VyOS 1.2 accepts 68..9000)"),
    ("        multicast disable\n        remote-ip 172.12.1.11", "        mtu 9000\n        remote-ip 172.12.1.11",
     "interfaces tunnel tun0 mtu: invalid value '9000': out of range (VyOS 1.2 accepts 64..8024)"),
]


@pytest.mark.parametrize("old,new,message", INVALID_12, ids=[n for _, n, _ in INVALID_12])
def test_an_invalid_value_is_an_error_at_its_line(ipip: Path, old: str, new: str, message: str) -> None:
    line = edit(ipip, old, new)
    assert problems(ipip) == [f"{ipip}:{line}: {message}"]


@pytest.mark.parametrize("leaf,message", [
    ("encapsulation ipip", "no encapsulation: VyOS refuses to commit a tunnel without one (VyOS 1.2 accepts "
                           f"{ENCAP_12})"),
    ("local-ip 172.12.1.10", "no local-ip: VyOS refuses to commit a tunnel without its local address"),
    ("remote-ip 172.12.1.11", "no remote-ip: VyOS refuses to commit a tunnel without its remote address "
                              "(only gre may omit it)"),
])
def test_a_tunnel_missing_a_leaf_vyos_requires_is_an_error_at_the_tunnel(ipip: Path, leaf: str, message: str) -> None:
    edit(ipip, f"        {leaf}\n", "")
    assert problems(ipip) == [f"{ipip}:{line_of(ipip, 'tunnel tun0 {')}: interfaces tunnel tun0: {message}"]


INVALID_14 = [   # (old, new, the line the error names, message)
    ("mtu 9480", "mtu 67", "mtu 67", "interfaces tunnel tun0 mtu: invalid value '67': out of range (VyOS 1.4 accepts "
                                     "68..16000)"),
    ("mtu 9500\n        speed auto\n    }\n    ethernet eth2", "mtu 16001\n        speed auto\n    }\n    ethernet eth2",
     "mtu 16001", "interfaces ethernet eth1 mtu: invalid value '16001': out of range (VyOS 1.4 accepts 68..16000)"),
    ("remote 172.12.1.11", "remote gw2", "remote gw2",      # VyOS takes an address, not a name
     "interfaces tunnel tun0 remote: invalid value 'gw2': gw2 is not an IPv4 or IPv6 address"),
    ("encapsulation ipip", "encapsulation ip6ip6", "remote 172",     # a valid encapsulation with an IPv6 underlay
     "interfaces tunnel tun0 remote: invalid value '172.12.1.11': encapsulation ip6ip6 needs an IPv6 address"),
]


@pytest.mark.parametrize("old,new,at,message", INVALID_14, ids=[n for _, n, _, _ in INVALID_14])
def test_values_are_checked_against_the_configs_release(ipip14: Path, old: str, new: str, at: str, message: str) -> None:
    edit(ipip14, old, new)
    assert f"{ipip14}:{line_of(ipip14, at)}: {message}" in problems(ipip14)


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    conf = render(tmp_path, "hub3")
    a = edit(conf / "gw-hub.cfg", "address 10.1.1.1/24", "address 10.1.1.1/33")
    b = edit(conf / "gw-hub.cfg", "encapsulation gre", "encapsulation grey")
    c = edit(conf / "gw2.cfg", "next-hop 1.1.2.1 {\n            }\n        }\n        route 10.1.2.0/24",
             "next-hop 1.1.2.x {\n            }\n        }\n        route 10.1.2.0/24")
    nodes = [Node("gw-hub", conf / "gw-hub.cfg"), Node("server1", None), Node("gw2", conf / "gw2.cfg")]
    with pytest.raises(ClabgenError) as err:
        vyos.load_gateways(nodes)
    assert [str(p).split(": ")[0] for p in err.value.problems] == [
        f"{conf / 'gw-hub.cfg'}:{a}", f"{conf / 'gw-hub.cfg'}:{b}", f"{conf / 'gw2.cfg'}:{c}"]


class Node:
    def __init__(self, name: str, config: Path | None) -> None:
        self.name, self.config = name, config


def test_two_tunnels_with_the_same_endpoints_are_an_error(tmp_path: Path) -> None:
    cfg = render(tmp_path, "ipip") / "gw1.cfg"
    text = cfg.read_text()
    tun = text[text.index("    tunnel tun0 {"):text.index("}\n", text.index("    tunnel tun0 {")) + 2]
    cfg.write_text(text.replace(tun, tun + tun.replace("tun0", "tun1").replace("1.1.1.1/24", "1.1.9.1/24")))
    first, second = line_of(cfg, "tunnel tun0 {"), line_of(cfg, "tunnel tun1 {")
    assert problems(cfg) == [
        f"{cfg}:{second}: interfaces tunnel tun1: same encapsulation (ipip), local and remote address as "
        f"interfaces tunnel tun0 (line {first}): the second tunnel cannot be told apart from the first"]


# --- files that are not config.boot text ---------------------------------------------------------


def test_a_binary_file_is_an_error_naming_the_file_not_a_decode_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "gw1.cfg"
    cfg.write_bytes(Path(sys.executable).resolve().read_bytes()[:4096])   # an ELF binary
    assert problems(cfg) == [f"{cfg}:1: not a text config.boot: byte 0x7f at offset 0 is a control character"]


def test_a_non_utf8_byte_is_reported_with_its_offset_and_line(ipip: Path) -> None:
    text = ipip.read_bytes()
    at = text.index(b"speed auto")
    ipip.write_bytes(text[:at] + b"\xe9" + text[at:])                     # Latin-1 e-acute
    line = text[:at].count(b"\n") + 1
    assert problems(ipip) == [f"{ipip}:{line}: not a text config.boot: byte 0xe9 at offset {at} is not UTF-8"]


def test_an_unreadable_config_is_an_error_naming_it(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: cannot read the config: Is a directory"]


def test_unbalanced_braces_and_comments_point_at_where_they_open(ipip: Path) -> None:
    text = ipip.read_text()
    with pytest.raises(ClabgenError, match=r"^x.cfg:2:1: unbalanced `\{`: `ethernet eth1 \{` is never closed$"):
        parse_boot(text[:text.index("        duplex auto")], "x.cfg")
    with pytest.raises(ClabgenError, match=r"^x.cfg:3:1: unterminated `/\*` comment: no `\*/` follows$"):
        parse_boot("a {\n}\n/* open\nb 1\n", "x.cfg")


# --- valid for VyOS but outside the emulated subset: a note, not an error ------------------------


def test_values_vyos_accepts_but_the_emulation_does_not_model_are_listed(ipip: Path) -> None:
    edit(ipip, "    loopback lo {\n    }\n",
         "    ethernet eth3 {\n        address dhcp\n        address 2001:db8::1/64\n    }\n"
         "    loopback lo {\n    }\n    tunnel tun9 {\n        address 1.1.9.1/24\n        encapsulation sit\n"
         "        local-ip 172.12.1.10\n        remote-ip 172.12.1.99\n    }\n")
    edit(ipip, "\nprotocols {\n", "\nprotocols {\n    rip {\n        network 10.1.5.0/24\n"
                                "    }\n    static {\n        route6 2001:db8:9::/48 {\n"
                                "            next-hop 2001:db8::2 {\n            }\n        }\n    }\n")
    edit(ipip, "            next-hop 1.1.1.2 {\n", "            next-hop 1.1.1.2 {\n                distance 10\n")
    cfg = vyos.load(ipip)
    assert cfg.ignored == [
        "interfaces ethernet eth3 address dhcp (DHCP is not emulated)",
        "interfaces ethernet eth3 address 2001:db8::1/64 (IPv6 is not emulated)",
        "interfaces tunnel tun9 (encapsulation sit is not emulated; emulated: ipip, gre)",
        "protocols rip",
        "protocols static route6 2001:db8:9::/48",
        "protocols static route 10.1.8.0/24 next-hop 1.1.1.2 distance 10",
        "system",
    ]
    assert [t.ifname for t in cfg.tunnels] == ["tun0"]
    assert [i.ifname for i in cfg.interfaces] == ["eth1", "eth2", "eth3", "lo"]


def test_gre_without_remote_and_a_source_interface_are_listed_not_refused(ipip14: Path) -> None:
    edit(ipip14, "        encapsulation ipip\n", "        encapsulation gre\n")
    edit(ipip14, "        remote 172.12.1.11\n        source-address 172.12.1.10\n", "        source-interface eth2\n")
    cfg = vyos.load(ipip14)
    assert cfg.tunnels == []
    assert "interfaces tunnel tun0 (a local address taken from source-interface is not emulated)" in cfg.ignored
    assert "interfaces tunnel tun0 (gre without remote, a multipoint tunnel, is not emulated)" in cfg.ignored


def test_without_a_release_footer_any_releases_values_are_accepted(ipip: Path) -> None:
    text = ipip.read_text()
    ipip.write_text(text[:text.index("/* Warning")])            # a hand-written config: no release footer
    tun_mtu = edit(ipip, "        multicast disable\n", "        mtu 64\n")                 # 1.2 and 1.3 take 64
    eth_mtu = edit(ipip, "10.1.5.1/24\n        duplex auto\n", "10.1.5.1/24\n        mtu 9500\n") + 1   # 1.3+ take 9500
    cfg = vyos.load(ipip)
    assert cfg.release == "any"
    assert (cfg.tunnels[0].mtu, cfg.interfaces[0].mtu) == (vyos.At(64, tun_mtu, "interfaces tunnel tun0 mtu"),
                                                           vyos.At(9500, eth_mtu, "interfaces ethernet eth1 mtu"))


def test_line_numbers_travel_with_the_values(ipip14: Path) -> None:
    cfg = vyos.load(ipip14)
    eth1 = cfg.interfaces[0]
    assert (eth1.line, eth1.addresses[0].line, eth1.mtu) == (2, 3, vyos.At(9500, 5, "interfaces ethernet eth1 mtu"))
    tun = cfg.tunnels[0]
    assert (tun.line, tun.mtu, tun.addresses[0].line) == (line_of(ipip14, "tunnel tun0 {"),
                                                          vyos.At(9480, 19, "interfaces tunnel tun0 mtu"), 17)
    assert (tun.local, tun.remote) == (vyos.At("172.12.1.10", 21, "interfaces tunnel tun0 source-address"),
                                       vyos.At("172.12.1.11", 20, "interfaces tunnel tun0 remote"))
    route = cfg.routes[0]
    assert (route.line, route.next_hops[0].line) == (line_of(ipip14, "route 10.1.8.0/24"), line_of(ipip14, "next-hop"))


# --- refusals while applying name the leaf's line -------------------------------------------------


@pytest.fixture
def namespace() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    ns = f"clabgen-emutest-{uuid.uuid4().hex[:6]}"
    netlink.ns_create(ns)
    try:
        yield ns
    finally:
        netlink.ns_delete(ns)


def test_a_value_the_userspace_tunnel_cannot_run_names_the_tunnel(ipip: Path, namespace: str) -> None:
    # VyOS 1.2 takes a tunnel MTU from 64; no IPv4 tunnel (kernel or userspace) goes below 68.
    edit(ipip, "        multicast disable\n", "        mtu 64\n")
    cfg = vyos.load(ipip)
    with pytest.raises(RuntimeFailure) as err:
        emu_apply.apply_links(namespace, cfg, tunnels="userspace")
    assert str(err.value) == (f"{ipip}:{line_of(ipip, 'tunnel tun0 {')}: interfaces tunnel tun0: userspace ipip tunnel "
                              f"tun0: tun0.mtu: 64 must be an integer in 68..65515")


def test_a_local_address_the_userspace_tunnel_cannot_bind_names_its_line(ipip: Path, namespace: str) -> None:
    # Valid for VyOS, and the kernel's ipip takes it, but a raw socket cannot bind an address no
    # interface has: the error names the local-ip line, not a dataplane traceback.
    netlink.veth(namespace, "eth2", namespace, "peer2", 1500)
    line = edit(ipip, "local-ip 172.12.1.10", "local-ip 172.12.1.99")
    with pytest.raises(RuntimeFailure) as err:
        emu_apply.apply_links(namespace, vyos.load(ipip), tunnels="userspace")
    assert str(err.value) == (f"{ipip}:{line}: interfaces tunnel tun0 local-ip: userspace ipip tunnel tun0: no "
                              f"interface of this gateway has 172.12.1.99, so the tunnel cannot send from it (the "
                              f"kernel's ipip tunnel would accept it but carry nothing)")


def test_a_kernel_refusal_names_the_leaf_being_applied(ipip: Path, namespace: str) -> None:
    # The tunnel is valid for VyOS but not emulated, so the route through it has no way out.
    edit(ipip, "encapsulation ipip", "encapsulation sit")
    cfg = vyos.load(ipip)
    done = emu_apply.apply_links(namespace, cfg, tunnels="userspace")
    with pytest.raises(RuntimeFailure) as err:
        emu_apply.apply_routes(namespace, cfg, done, RouteFacts("static", 20))
    assert str(err.value) == (
        f"{ipip}:{line_of(ipip, 'next-hop 1.1.1.2')}: protocols static route 10.1.8.0/24 next-hop: adding route "
        f"10.1.8.0/24 via 1.1.1.2: the kernel refused it: Network is unreachable (no interface applied from this "
        f"config has an address in the next-hop's subnet)")


def test_a_kernel_tunnel_mtu_refusal_names_the_mtu_line(ipip: Path, namespace: str) -> None:
    if not kernel_supports("ipip"):
        pytest.skip("this kernel has no ipip tunnels")
    line = edit(ipip, "        multicast disable\n", "        mtu 64\n")
    with pytest.raises(RuntimeFailure) as err:
        emu_apply.apply_links(namespace, vyos.load(ipip), tunnels="kernel")
    assert str(err.value) == (f"{ipip}:{line}: interfaces tunnel tun0 mtu: setting MTU 64 on tun0: the kernel refused "
                              f"it: Invalid argument")


# --- the docker image's entry point reports the same errors in status.json ------------------------


def test_boot_reports_an_invalid_config_in_status_json(ipip: Path, tmp_path: Path) -> None:
    line = edit(ipip, "address 10.1.5.1/24", "address 10.1.5.300/24")
    status = boot.start(ipip, tmp_path / "state")
    assert status == json.loads((tmp_path / "state" / "status.json").read_text())
    assert status == {"applied": False, "config": str(ipip), "error": (
        f"{ipip}:{line}: interfaces ethernet eth1 address: invalid value '10.1.5.300/24': 10.1.5.300 is not an IPv4 "
        f"or IPv6 address {ADDRESS_HINT}")}


def test_boot_reports_a_binary_config_in_status_json(tmp_path: Path) -> None:
    cfg = tmp_path / "config.boot"
    cfg.write_bytes(b"interfaces {\n\x00\x01\x02")
    status = boot.start(cfg, tmp_path / "state")
    assert status["error"] == f"{cfg}:2: not a text config.boot: byte 0x00 at offset 13 is a control character"


def run_boot_in(ns: str, cfg: Path, state: Path) -> dict[str, object]:
    """boot.start as the container runs it: inside the node's namespace, as its own process."""
    code = "import sys, json; from pathlib import Path; from clabgen.emu import boot; " \
           "print(json.dumps(boot.start(Path(sys.argv[1]), Path(sys.argv[2]))))"
    env = {**os.environ, "CLABGEN_EMU_WAIT": "0.2", "CLABGEN_TUNNELS": "userspace"}
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, str(cfg), str(state)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=True).stdout
    status: dict[str, object] = json.loads(out.splitlines()[-1])
    return status


def test_boot_reports_a_kernel_refusal_with_its_line(ipip: Path, tmp_path: Path, namespace: str) -> None:
    edit(ipip, "encapsulation ipip", "encapsulation sit")
    status = run_boot_in(namespace, ipip, tmp_path / "state")
    assert status["applied"] is False
    assert str(status["error"]).startswith(f"{ipip}:{line_of(ipip, 'next-hop 1.1.1.2')}: protocols static route "
                                           f"10.1.8.0/24 next-hop: adding route 10.1.8.0/24 via 1.1.1.2: the kernel "
                                           f"refused it: Network is unreachable")
