"""Routing for rendered labs, added by hand as a user would: config.boot `protocols` blocks (VyOS 1.4
syntax, and 1.2's per-interface `ip ospf`) the FRR runtime tests put into ipip-vyos14 and hub3,
and a snapshot of FRR's standard directories on the host (a lab must add nothing there)."""

from __future__ import annotations

import os
import re
from pathlib import Path

FRR_RUN = [Path("/run/frr"), Path("/var/run/frr"), Path("/var/lib/frr"), Path("/var/log/frr"), Path("/etc/frr")]

SPF = """        timers {
            throttle {
                spf {
                    delay 0
                    initial-holdtime 50
                    max-holdtime 500
                }
            }
        }
"""

OSPF_14 = """protocols {
    ospf {
        area 0 {
            network %(lan)s
            network 1.1.1.0/24
        }
        interface eth1 {
            passive {
            }
        }
        interface tun0 {
            dead-interval 10
            hello-interval 1
            network point-to-point
            retransmit-interval 1
        }
        log-adjacency-changes {
        }
        parameters {
            router-id %(rid)s
        }
""" + SPF + """    }
    static {
        route 192.168.%(n)s.0/24 {
            next-hop %(peer)s {
            }
        }
    }
}
"""

BGP_14 = """protocols {
    bfd {
        peer %(peer)s {
            interval {
                multiplier 3
                receive 100
                transmit 100
            }
        }
    }
    bgp {
        address-family {
            ipv4-unicast {
                network %(lan)s {
                }
            }
        }
        neighbor %(peer)s {
            address-family {
                ipv4-unicast {
                }
            }
            bfd {
            }
            remote-as %(peer_as)s
            timers {
                holdtime 9
                keepalive 3
            }
        }
        parameters {
            router-id %(rid)s
        }
        system-as %(as)s
    }
}
"""

IP_OSPF_12 = """        ip {
            ospf {
                dead-interval 10
                hello-interval 1
                network point-to-point
                retransmit-interval 3
            }
        }
"""


def snapshot() -> dict[str, list[str]]:
    """What FRR's standard directories hold on the host: a lab must not add anything there."""
    return {str(d): sorted(os.listdir(d)) if d.is_dir() else [] for d in FRR_RUN}


def set_protocols(cfg: Path, protocols: str) -> None:
    """Replace the config's `protocols {}` block (its static routes) with `protocols`."""
    text, n = re.subn(r"^protocols \{\n.*?^\}\n", protocols, cfg.read_text(), count=1, flags=re.S | re.M)
    assert n == 1, cfg
    cfg.write_text(text)


def ospf_on_tunnels_12(cfg: Path) -> None:
    """1.2 syntax: per-interface OSPF inside each `interfaces tunnel` block (multicast on)."""
    text = re.sub(r"^(    tunnel tun\d \{\n)", r"\1" + IP_OSPF_12, cfg.read_text(), flags=re.M)
    cfg.write_text(text.replace("        multicast disable\n", "        multicast enable\n"))
