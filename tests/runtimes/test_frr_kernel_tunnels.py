"""FRR and `parameters ip ttl` over the kernel's own ipip tunnels: inside user-mode-linux (a real
Linux 6.1 with ipip), since this machine's kernel has none. One boot: deploy a 1.4 lab whose
gateways run OSPF and whose gw1 tunnel has `ttl 17`; OSPF reaches Full over the kernel tunnel and
installs its route; gw1's tunnel says ttl 17 and its packets carry it on the underlay; destroy
leaves nothing."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from ..emu.frr_labs import OSPF_14, set_protocols
from ..labutil import lab_name, unique_lab
from .test_netns_kernel_tunnels import UML, _boot, _prologue

pytestmark = [pytest.mark.uml, pytest.mark.netns]
if UML is None:
    pytest.skip("user-mode-linux is not installed (make test installs it)", allow_module_level=True)
if not os.access("/usr/lib/frr/zebra", os.X_OK):
    pytest.skip("needs FRR (make test installs Debian's frr)", allow_module_level=True)


def test_ospf_and_a_fixed_ttl_over_kernel_ipip(tmp_path: Path) -> None:
    lab = unique_lab(tmp_path, "ipip-vyos14", "u")
    for gw, lan, rid, n, peer in (("gw1", "10.1.5.0/24", "172.12.1.10", 1, "1.1.1.2"),
                                  ("gw2", "10.1.8.0/24", "172.12.1.11", 2, "1.1.1.1")):
        set_protocols(lab / "startup-conf" / f"{gw}.cfg", OSPF_14 % {"lan": lan, "rid": rid, "n": n, "peer": peer})
    cfg = lab / "startup-conf" / "gw1.cfg"
    cfg.write_text(cfg.read_text().replace("        mtu 9480\n", "        mtu 9480\n        parameters {\n"
                                           "            ip {\n                ttl 17\n            }\n        }\n"))
    name = lab_name(lab)
    ns = f"clab-{name}"
    vtysh = f"vtysh --vty_socket /run/clabgen/{name}/frr/gw1/frr"
    clabgen = str(Path(sys.executable).parent / "clabgen")
    script = _prologue(sys.executable) + f"""echo "== deploy"
{clabgen} deploy {lab} --runtime netns --tunnels auto 2>&1 | cat
echo "== link"
ip -d -n {ns}-gw1 link show tun0
echo "== ospf"
for i in $(seq 120); do ip -n {ns}-gw1 route | grep -q "proto ospf" && break; sleep 0.25; done
{vtysh} -c 'show ip ospf neighbor'
ip -n {ns}-gw1 route
echo "== capture"
ip netns exec {ns}-gw2 timeout 15 tcpdump -l -nn -v -c 3 -i eth2 'ip proto 4 and src 172.12.1.10 and ip[29] = 1' > /run/cap.txt 2>&1 &
sleep 2
ip netns exec {ns}-server1 ping -n -c 3 -i 0.3 -W 2 10.1.8.10
wait
cat /run/cap.txt
echo "== destroy"
{clabgen} destroy {lab} 2>&1 | cat
echo "== left"
ip netns list
ls /run/clabgen 2>/dev/null
ps -eo comm | grep -E '^(zebra|staticd|ospfd)$'
echo "== end"
echo o > /proc/sysrq-trigger
sleep 10
"""
    work = tmp_path / "uml"
    work.mkdir()
    parts = _boot(work, script, f"clabgen-{name}")
    assert "tun0 (kernel)" in parts["deploy"] and "FRR: zebra, staticd, ospfd" in parts["deploy"], parts["deploy"]
    assert re.search(r"\bttl 17\b", parts["link"]), parts["link"]
    assert "Full/-" in parts["ospf"], parts["ospf"]
    assert "10.1.8.0/24 via 1.1.1.2 dev tun0 proto ospf metric 20" in parts["ospf"], parts["ospf"]
    assert "ttl=62" in parts["capture"], parts["capture"]
    # The pings inside (ICMP, inner TTL 63 after gw1's hop) leave gw1 with the fixed outer TTL, not 63.
    outer = re.findall(r"\(tos 0x\w+, ttl (\d+),.*proto IPIP", parts["capture"])
    inner = re.findall(r"\(tos 0x\w+, ttl (\d+),.*proto ICMP", parts["capture"])
    assert (outer, inner) == (["17"] * 3, ["63"] * 3), parts["capture"]
    assert parts["left"].strip() == "", parts["left"]
