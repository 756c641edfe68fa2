"""`interfaces tunnel tunN parameters ip ttl N`: the outer TTL is fixed at N on the wire (kernel
tunnel or userspace dataplane, C and Python loops); without it the tunnel keeps the kernel's
`ttl inherit`, as every rendered lab expects. Captured on the underlay."""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from clabgen import labdir, labops
from clabgen.dataplane import bpf, kernel_supports, start, stop, wire

from ..dataplane import lab as L
from ..dataplane.test_dataplane import IMPLS, _ip_frames
from ..labutil import lab_name, residue, unique_lab

ETH = 14


@pytest.fixture
def dp_lab() -> Iterator[L.Lab]:
    """s1 -- gw1 == underlay == gw2 -- s2 in namespaces of its own (the dataplane tests' shape)."""
    if not L.CAN_RUN or shutil.which("ping") is None:
        pytest.skip("needs root, network namespaces, /dev/net/tun and ping")
    built = L.build()
    try:
        yield built
    finally:
        L.destroy(built)


@pytest.fixture
def dp_state(tmp_path: Path) -> Iterator[Path]:
    try:
        yield tmp_path / "state"
    finally:
        stop(tmp_path / "state")


def test_a_fixed_ttl_stays_in_the_header_template() -> None:
    tmpl = wire.header_template("ipip", "172.12.1.10", "172.12.1.11", 17)
    inner = bytes([0x45, 0, 0, 20, 0, 0, 0, 0, 63, 1, 0, 0]) + bytes(8)
    buf = bytearray(tmpl + inner)
    wire.fill_outer(buf, len(tmpl), len(inner), 5, inherit_ttl=False)
    assert buf[8] == 17
    buf = bytearray(wire.header_template("ipip", "172.12.1.10", "172.12.1.11") + inner)
    wire.fill_outer(buf, 20, len(inner), 5)
    assert buf[8] == 63


def outer_ttls(frames: list[bytes], proto: int, src: str) -> list[int]:
    return [f[ETH + 8] for f in _ip_frames(frames, proto, src)]


@pytest.mark.netns
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_the_userspace_dataplane_sends_a_fixed_ttl(dp_lab: L.Lab, dp_state: Path, mode: str, impl: str) -> None:
    lab = dp_lab
    spec = lab.tunnel_spec(mode)
    spec["tunnels"][0]["ttl"] = 17            # type: ignore[index]  # gw1's end only
    start(spec, dp_state, impl=impl)
    L.route_lans(lab, via_tunnel=True)
    with L.capture(lab.ns("gw1"), "und0") as und:
        out = lab.ping("s1", L.S2)
    assert out.returncode == 0 and re.findall(r"ttl=(\d+)", out.stdout) == ["62"] * 3   # the inner TTL is untouched
    proto = 4 if mode == "ipip" else 47
    assert outer_ttls(und.frames, proto, L.UNDERLAY["gw1"]) == [17] * 3
    assert outer_ttls(und.frames, proto, L.UNDERLAY["gw2"]) == [63] * 3                 # inherit: unchanged
    for f in _ip_frames(und.frames, proto, L.UNDERLAY["gw1"]):
        assert wire.checksum(f[ETH:ETH + 20]) == 0


@pytest.mark.netns
@pytest.mark.parametrize("tunnels", ["userspace", "kernel", "bpf"])
def test_parameters_ip_ttl_is_on_the_wire_of_a_deployed_lab(tmp_path: Path, tunnels: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if tunnels == "kernel" and not kernel_supports("ipip"):
        pytest.skip("this kernel has no ipip tunnels")
    if tunnels == "bpf" and (why := bpf.unavailable("ipip")):
        pytest.skip(f"BPF tunnels unavailable here: {why}")
    lab_dir = unique_lab(tmp_path, "ipip-vyos14", "ttl")
    cfg = lab_dir / "startup-conf" / "gw1.cfg"
    text = cfg.read_text()
    assert text.count("        mtu 9480\n") == 1
    cfg.write_text(text.replace("        mtu 9480\n", "        mtu 9480\n        parameters {\n            ip {\n"
                                                     "                ttl 17\n            }\n        }\n"))
    try:
        labops.deploy(lab_dir, "netns", tunnels=tunnels)
        rendered = labdir.load(lab_dir)
        with L.capture(rendered.container("gw2"), "eth2") as und:
            out = L.ping(rendered.container("server1"), "10.1.8.10")
        assert out.returncode == 0 and "ttl=62" in out.stdout, out.stdout
        assert outer_ttls(und.frames, 4, "172.12.1.10") == [17] * 3
        assert outer_ttls(und.frames, 4, "172.12.1.11") == [63] * 3
        ip = struct.unpack_from("!B", _ip_frames(und.frames, 4, "172.12.1.10")[0], ETH)[0]
        assert ip == 0x45
    finally:
        labops.destroy(lab_dir)
    assert residue(lab_name(lab_dir)) == []
