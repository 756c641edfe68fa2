"""VyOS routing -> FRR configuration, text in and text out: the lines vyos-1x's templates (1.4) and
vyatta-cfg-quagga's node.defs (1.2) give FRR, and FILE:LINE errors for what VyOS would refuse.
The configs are the oracle-validated fragments of the research notes (section 4), cut down."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clabgen.emu import frr, vyos
from clabgen.errors import ClabgenError

FOOTER_12 = '/* Warning: Do not remove the following line. */\n/* Release version: 1.2.8 */\n'
FOOTER_14 = '// Warning: Do not remove the following line.\n// Release version: 1.4.0\n'
FOOTER_15 = '// Warning: Do not remove the following line.\n// Release version: 1.5-stream-2025-Q1\n'

INTERFACES_12 = """\
interfaces {
    ethernet eth0 {
        address 192.0.2.1/30
    }
    ethernet eth1 {
        address 10.1.0.1/24
    }
    loopback lo {
        address 10.255.0.1/32
    }
    tunnel tun0 {
        address 172.16.0.1/30
        encapsulation gre
        ip {
            ospf {
                cost 10
                dead-interval 40
                hello-interval 10
                network point-to-point
            }
        }
        local-ip 192.0.2.1
        parameters {
            ip {
                ttl 64
            }
        }
        remote-ip 192.0.2.2
    }
}
"""

PROTOCOLS_12 = """\
protocols {
    bfd {
        peer 192.0.2.2 {
            interval {
                multiplier 3
                receive 300
                transmit 300
            }
        }
    }
    bgp 65001 {
        address-family {
            ipv4-unicast {
                network 10.1.0.0/24 {
                }
            }
        }
        neighbor 192.0.2.2 {
            bfd {
            }
            ebgp-multihop 2
            remote-as 65002
            timers {
                holdtime 9
                keepalive 3
            }
            update-source 192.0.2.1
        }
        parameters {
            router-id 10.255.0.1
        }
    }
    ospf {
        area 0 {
            network 10.1.0.0/24
            network 172.16.0.0/30
            network 10.255.0.1/32
        }
        parameters {
            router-id 10.255.0.1
        }
        passive-interface eth1
        redistribute {
            connected {
            }
        }
        timers {
            throttle {
                spf {
                    delay 50
                    max-holdtime 1000
                }
            }
        }
    }
    static {
        route 0.0.0.0/0 {
            next-hop 192.0.2.2 {
            }
        }
    }
}
"""

CORE_14 = """\
interfaces {
    ethernet eth0 {
        address "192.0.2.1/30"
    }
    ethernet eth1 {
        address "10.1.0.1/24"
    }
    loopback lo {
        address "10.255.0.1/32"
    }
    tunnel tun0 {
        address "172.16.0.1/30"
        encapsulation "gre"
        parameters {
            ip {
                ttl "64"
            }
        }
        remote "192.0.2.2"
        source-address "192.0.2.1"
    }
}
protocols {
    bgp {
        address-family {
            ipv4-unicast {
                network 10.1.0.0/24 {
                }
            }
        }
        neighbor 192.0.2.2 {
            address-family {
                ipv4-unicast {
                    nexthop-self {
                    }
                }
            }
            bfd {
            }
            remote-as "65002"
        }
        parameters {
            bestpath {
                compare-routerid
            }
            router-id "10.255.0.1"
        }
        system-as "65001"
        timers {
            holdtime "180"
            keepalive "60"
        }
    }
    ospf {
        area 0 {
            network "10.1.0.0/24"
            network "172.16.0.0/30"
        }
        interface eth1 {
            passive {
            }
        }
        interface tun0 {
            bfd {
            }
            cost "10"
            dead-interval "4"
            hello-interval "1"
            network "point-to-point"
        }
        log-adjacency-changes {
        }
        parameters {
            router-id "10.255.0.1"
        }
        passive-interface "default"
    }
    static {
        route 10.9.0.0/16 {
            interface tun0 {
            }
            next-hop 172.16.0.2 {
            }
        }
    }
}
"""

FRR_12 = """\
! zebra
no zebra nexthop kernel enable
!
! staticd
ip route 0.0.0.0/0 192.0.2.2
!
! bfdd
bfd
 peer 192.0.2.2
  detect-multiplier 3
  receive-interval 300
  transmit-interval 300
  no shutdown
 exit
 !
exit
!
! ospfd
interface tun0
 ip ospf cost 10
 ip ospf hello-interval 10
 ip ospf dead-interval 40
 ip ospf network point-to-point
exit
!
router ospf
 network 10.1.0.0/24 area 0
 network 172.16.0.0/30 area 0
 network 10.255.0.1/32 area 0
 ospf router-id 10.255.0.1
 passive-interface eth1
 redistribute connected
 timers throttle spf 50 1000 1000
exit
!
! bgpd
router bgp 65001
 no bgp ebgp-requires-policy
 no bgp network import-check
 !
 address-family ipv4 unicast
  network 10.1.0.0/24
 exit-address-family
 !
 neighbor 192.0.2.2 remote-as 65002
 neighbor 192.0.2.2 bfd
 neighbor 192.0.2.2 ebgp-multihop 2
 neighbor 192.0.2.2 timers 3 9
 neighbor 192.0.2.2 update-source 192.0.2.1
 !
 address-family ipv4 unicast
  neighbor 192.0.2.2 activate
 exit-address-family
 !
 bgp router-id 10.255.0.1
exit
!
"""

FRR_14 = """\
! zebra
no zebra nexthop kernel enable
!
! staticd
ip route 10.9.0.0/16 tun0
ip route 10.9.0.0/16 172.16.0.2
!
! bfdd
! ospfd
interface eth1
 ip ospf passive
exit
!
interface tun0
 ip ospf cost 10
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf bfd
 ip ospf network point-to-point
exit
!
router ospf
 network 10.1.0.0/24 area 0
 network 172.16.0.0/30 area 0
 log-adjacency-changes
 ospf router-id 10.255.0.1
 passive-interface default
 timers throttle spf 200 1000 10000
exit
!
! bgpd
router bgp 65001
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 !
 address-family ipv4 unicast
  network 10.1.0.0/24
 exit-address-family
 !
 neighbor 192.0.2.2 remote-as 65002
 neighbor 192.0.2.2 bfd
 !
 address-family ipv4 unicast
  neighbor 192.0.2.2 next-hop-self
  neighbor 192.0.2.2 activate
 exit-address-family
 !
 bgp bestpath compare-routerid
 bgp router-id 10.255.0.1
 timers bgp 60 180
exit
!
"""


def load(tmp_path: Path, text: str, name: str = "r1.cfg") -> vyos.DeviceConfig:
    path = tmp_path / name
    path.write_text(text)
    return vyos.load(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(ClabgenError) as err:
        vyos.load(path)
    return [str(p).removeprefix(f"{path}:") for p in err.value.problems]


def line_of(text: str, needle: str, nth: int | None = None) -> int:
    """The line that is `needle` (stripped); nth picks one when several are."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == needle.strip()]
    assert len(found) == 1 or nth is not None, (needle, found)
    return found[nth or 0]


def test_vyos_12_routing_becomes_what_vyos_12_gives_frr(tmp_path: Path) -> None:
    cfg = load(tmp_path, INTERFACES_12 + PROTOCOLS_12 + FOOTER_12)
    assert frr.integrated(cfg) == FRR_12
    assert cfg.routing.daemons == ("zebra", "staticd", "bfdd", "ospfd", "bgpd")
    assert cfg.ignored == [] and cfg.notes == []
    assert [t.ttl.value if t.ttl else None for t in cfg.tunnels] == [64]


@pytest.mark.parametrize("footer", [FOOTER_14, FOOTER_15], ids=["1.4", "1.5"])
def test_vyos_14_routing_becomes_what_the_vyos_1x_templates_render(tmp_path: Path, footer: str) -> None:
    cfg = load(tmp_path, CORE_14 + footer)
    assert frr.integrated(cfg) == FRR_14
    files = frr.render(cfg)
    assert sorted(files) == ["bfdd", "bgpd", "ospfd", "staticd", "zebra"]
    assert all(text.startswith("frr defaults traditional\n") for text in files.values())


def test_static_routes_alone_need_no_frr(tmp_path: Path) -> None:
    cfg = load(tmp_path, INTERFACES_12 + "protocols {\n    static {\n        route 10.2.0.0/24 {\n"
                         "            next-hop 192.0.2.2 {\n            }\n        }\n    }\n}\n" + FOOTER_12)
    assert not cfg.routing.uses_frr and frr.render(cfg) == {} and cfg.routing.daemons == ()


def test_a_1_2_neighbor_without_address_family_is_active_a_1_4_one_is_not(tmp_path: Path) -> None:
    v14 = CORE_14.replace("""            address-family {
                ipv4-unicast {
                    nexthop-self {
                    }
                }
            }
            bfd""", "            bfd")
    cfg = load(tmp_path, v14 + FOOTER_14)
    assert "activate" not in frr.render(cfg)["bgpd"]
    assert cfg.notes == ["protocols bgp neighbor 192.0.2.2: no address-family ipv4-unicast, so VyOS never "
                         "activates it (it warns: BGP neighbor requires address-family)"]
    v12 = PROTOCOLS_12.replace("        parameters {\n            router-id 10.255.0.1\n        }\n    }\n    ospf",
                               "        parameters {\n            default {\n                no-ipv4-unicast\n"
                               "            }\n        }\n    }\n    ospf")
    bgpd = frr.render(load(tmp_path, INTERFACES_12 + v12 + FOOTER_12))["bgpd"]
    assert " no bgp default ipv4-unicast\n" in bgpd and "  neighbor 192.0.2.2 activate\n" in bgpd


def test_what_frr_is_not_given_is_listed_as_not_applied(tmp_path: Path) -> None:
    v14 = CORE_14.replace('        system-as "65001"\n', '        system-as "65001"\n        listen {\n'
                          '            limit "5"\n        }\n').replace(
        '        passive-interface "default"\n',
        '        passive-interface "default"\n        default-information {\n            originate {\n'
        '            }\n        }\n        area 1 {\n            range 10.8.0.0/16 {\n            }\n        }\n')
    cfg = load(tmp_path, v14 + FOOTER_14)
    assert cfg.ignored == ["protocols bgp listen", "protocols ospf default-information",
                           "protocols ospf area 1 range 10.8.0.0/16"]


def test_interface_ospf_of_1_2_without_protocols_ospf_is_not_applied(tmp_path: Path) -> None:
    cfg = load(tmp_path, INTERFACES_12 + FOOTER_12)
    assert cfg.ignored == ["interfaces tunnel tun0 ip ospf (no protocols ospf uses it)"]
    assert not cfg.routing.uses_frr


BAD_14 = [
    ('remote-as "65002"', 'remote-as "abc"',
     "protocols bgp neighbor 192.0.2.2 remote-as: invalid value 'abc': not an integer "
     "(VyOS accepts 1..4294967294, external or internal)"),
    ('remote-as "65002"', 'remote-as "4294967295"',
     "protocols bgp neighbor 192.0.2.2 remote-as: invalid value '4294967295': out of range "
     "(VyOS accepts 1..4294967294, external or internal)"),
    ('            router-id "10.255.0.1"\n        }\n        system-as',
     '            router-id "1.2.3"\n        }\n        system-as',
     "protocols bgp parameters router-id: invalid value '1.2.3': 1.2.3 is not an IPv4 address"),
    ('system-as "65001"', 'system-as "0"',
     "protocols bgp system-as: invalid value '0': out of range (VyOS 1.4 accepts 1..4294967294)"),
    ('network "10.1.0.0/24"', 'network "10.1.0.1/24"',
     "protocols ospf area 0 network: invalid value '10.1.0.1/24': host bits set (the network is 10.1.0.0/24)"),
    ('area 0 {', 'area 1.2.3 {',
     "protocols ospf area: invalid value '1.2.3': not an area id (a number 0..4294967295 or an IPv4 address)"),
    ('cost "10"', 'cost "0"', "protocols ospf interface tun0 cost: invalid value '0': out of range "
                              "(VyOS 1.4 accepts 1..65535)"),
    ('network "point-to-point"', 'network "p2p"',
     "protocols ospf interface tun0 network: invalid value 'p2p': not one of the values VyOS accepts "
     "(VyOS accepts broadcast, non-broadcast, point-to-multipoint, point-to-point)"),
    ('interface eth1 {', 'interface foo1 {',
     "protocols ospf interface: invalid value 'foo1': not an interface name VyOS knows"),
    ('passive-interface "default"', 'passive-interface "eth1"',
     "protocols ospf passive-interface: invalid value 'eth1': VyOS 1.4 accepts only `default` here; a passive "
     "interface is `protocols ospf interface eth1 passive`"),
    ('holdtime "180"', 'holdtime "65536"',
     "protocols bgp timers holdtime: invalid value '65536': out of range (VyOS 1.4 accepts 0..65535)"),
    ('ttl "64"', 'ttl "256"', "interfaces tunnel tun0 parameters ip ttl: invalid value '256': out of range "
                              "(VyOS 1.4 accepts 0..255)"),
    ('    bgp {\n', '    bgp 65001 {\n',
     "protocols bgp: not VyOS 1.4 syntax: the AS is `system-as 65001` inside `protocols bgp` since VyOS 1.4"),
    ('        system-as "65001"\n', '',
     "protocols bgp: no system-as: VyOS refuses to commit protocols bgp without its AS number"),
]


@pytest.mark.parametrize("old,new,message", BAD_14, ids=[n.strip() for _, n, _ in BAD_14])
def test_a_routing_value_vyos_14_refuses_is_an_error_at_its_line(tmp_path: Path, old: str, new: str,
                                                                  message: str) -> None:
    assert CORE_14.count(old) == 1, old
    text = CORE_14.replace(old, new) + FOOTER_14
    at = line_of(text, new.strip().splitlines()[0]) if new.strip() else line_of(text, "bgp {")
    assert problems(tmp_path, text) == [f"{at}: {message}"]


BAD_12 = [
    ("remote-as 65002", "remote-as abc",
     "protocols bgp 65001 neighbor 192.0.2.2 remote-as: invalid value 'abc': not an integer "
     "(VyOS accepts 1..4294967294, external or internal)"),
    ("            router-id 10.255.0.1\n        }\n    }\n    ospf",
     "            router-id 1.2.3\n        }\n    }\n    ospf",
     "protocols bgp 65001 parameters router-id: invalid value '1.2.3': 1.2.3 is not an IPv4 address"),
    ("bgp 65001 {", "bgp 4294967295 {",
     "protocols bgp: invalid value '4294967295': out of range (VyOS 1.2 accepts 1..4294967294)"),
    ("holdtime 9", "holdtime 3",
     "protocols bgp 65001 neighbor 192.0.2.2 timers holdtime: invalid value '3': out of range "
     "(VyOS 1.2 accepts 0 or 4..65535)"),
    ("passive-interface eth1", "passive-interface foo",
     "protocols ospf passive-interface: invalid value 'foo': not an interface VyOS knows (none configured by that "
     "name) (VyOS 1.2 accepts an interface name or default)"),
    ("                network point-to-point", "                passive",
     "interfaces tunnel tun0 ip ospf passive: not VyOS 1.2 syntax: a passive interface is "
     "`protocols ospf passive-interface tun0` until 1.3"),
    ("                    delay 50", "                    delay 600001",
     "protocols ospf timers throttle spf delay: invalid value '600001': out of range (VyOS 1.2 accepts 0..600000)"),
    ("                multiplier 3", "                multiplier 1",
     "protocols bfd peer 192.0.2.2 interval multiplier: invalid value '1': out of range (VyOS 1.2 accepts 2..255)"),
    ("    bgp 65001 {", "    bgp {", "protocols bgp: no AS number: VyOS 1.2 writes `protocols bgp 65001 {`"),
]


@pytest.mark.parametrize("old,new,message", BAD_12, ids=[n.strip() for _, n, _ in BAD_12])
def test_a_routing_value_vyos_12_refuses_is_an_error_at_its_line(tmp_path: Path, old: str, new: str,
                                                                  message: str) -> None:
    text = INTERFACES_12 + PROTOCOLS_12
    assert text.count(old) == 1, old
    text = text.replace(old, new) + FOOTER_12
    assert problems(tmp_path, text) == [f"{line_of(text, new.strip().splitlines()[0])}: {message}"]


def test_1_4_syntax_in_a_1_2_config_names_what_1_2_writes(tmp_path: Path) -> None:
    text = INTERFACES_12 + PROTOCOLS_12.replace("        passive-interface eth1\n",
                                                "        interface eth1 {\n            passive {\n            }\n"
                                                "        }\n") + FOOTER_12
    assert problems(tmp_path, text) == [
        f"{line_of(text, 'interface eth1 {')}: protocols ospf interface: not VyOS 1.2 syntax: per-interface OSPF goes "
        "under `interfaces <type> eth1 ip ospf` until 1.3"]


def test_1_2_per_interface_ospf_in_a_1_4_config_is_an_error(tmp_path: Path) -> None:
    text = CORE_14.replace('        encapsulation "gre"\n',
                           '        encapsulation "gre"\n        ip {\n            ospf {\n                cost 10\n'
                           '            }\n        }\n') + FOOTER_14
    assert problems(tmp_path, text) == [
        f"{line_of(text, 'ospf {', nth=0)}: interfaces tunnel tun0 ip ospf: not VyOS 1.4 syntax: per-interface OSPF is "
        "`protocols ospf interface tun0` since VyOS 1.4"]


def test_1_2_refuses_neighbor_bfd_without_a_bfd_peer(tmp_path: Path) -> None:
    text = INTERFACES_12 + PROTOCOLS_12.replace("        peer 192.0.2.2 {", "        peer 192.0.2.9 {") + FOOTER_12
    at = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == "bfd {"][1]
    assert problems(tmp_path, text) == [f"{at}: protocols bgp neighbor 192.0.2.2 bfd: VyOS 1.2 refuses a "
                                        "neighbor's bfd without `protocols bfd peer 192.0.2.2`"]


def test_every_problem_of_a_file_at_once(tmp_path: Path) -> None:
    text = CORE_14.replace('remote-as "65002"', 'remote-as "abc"').replace('cost "10"', 'cost "x"') + FOOTER_14
    assert [p.split(":")[0] for p in problems(tmp_path, text)] == \
        [str(line_of(text, 'remote-as "abc"')), str(line_of(text, 'cost "x"'))]


@pytest.mark.skipif(not shutil.which("/usr/lib/frr/zebra"), reason="FRR is not installed (make test installs it)")
@pytest.mark.parametrize("text", [INTERFACES_12 + PROTOCOLS_12 + FOOTER_12, CORE_14 + FOOTER_14], ids=["1.2", "1.4"])
def test_frr_accepts_every_file(tmp_path: Path, text: str) -> None:
    """Each daemon's own config check (-C, dry run) passes; -N keeps its files out of /run/frr."""
    cfg = load(tmp_path, text)
    work = tmp_path / "frr"
    work.mkdir()
    shutil.chown(work, "frr", "frr")
    for daemon, conf in frr.render(cfg).items():
        path = work / f"{daemon}.conf"
        path.write_text(conf)
        result = subprocess.run(["unshare", "--mount", "sh", "-c", 'mount --bind "$1" /run && shift && exec "$@"', "-",
                                 str(work), f"/usr/lib/frr/{daemon}", "-C", "-f", str(path), "-u", "frr", "-g", "frr",
                                 "--log", "stdout"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (daemon, result.stdout, result.stderr)
        assert "Unknown command" not in result.stdout + result.stderr, (daemon, conf)
