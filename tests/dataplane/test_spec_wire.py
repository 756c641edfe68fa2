"""Spec checking and the outer-header rules, without namespaces."""

from __future__ import annotations

import struct

import pytest

from clabgen.dataplane import DataplaneError, parse_spec, wire

GOOD = {"netns": "ns1", "ifname": "tun0", "mode": "ipip", "local": "172.12.1.10", "remote": "172.12.1.11",
        "address": "1.1.1.1/24", "mtu": 9480}


def test_parse_spec_accepts_the_documented_shape() -> None:
    (t,) = parse_spec({"tunnels": [GOOD]})
    assert (t.mode, t.overhead, t.proto, t.mtu) == ("ipip", 20, 4, 9480)
    (g,) = parse_spec({"tunnels": [{**GOOD, "mode": "gre", "netns": None}]})
    assert (g.overhead, g.proto, g.netns) == (24, 47, None)


@pytest.mark.parametrize(("change", "message"), [
    ({"mode": "sit"}, "tunnels[0].mode: 'sit' unknown; valid: ['gre', 'ipip']"),
    ({"ifname": "a-very-long-ifname0"}, "tunnels[0].ifname"),
    ({"local": "fe80::1"}, "tunnels[0].local: 'fe80::1' is not an IPv4 address"),
    ({"address": "1.1.1.1/33"}, "tunnels[0].address"),
    ({"mtu": 65535}, "tunnels[0].mtu: 65535 must be an integer in 68..65515"),
    ({"netns": "../etc"}, "tunnels[0].netns"),
    ({"key": 3}, "tunnels[0]: unknown keys ['key']"),
    ({"ttl": 256}, "tunnels[0].ttl: 256 must be an integer in 0..255"),
])
def test_parse_spec_names_the_bad_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(DataplaneError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_spec({"tunnels": [{**GOOD, **change}]})


def test_parse_spec_rejects_two_tunnels_on_one_ifname() -> None:
    with pytest.raises(DataplaneError, match=r"tunnels\[1\]: clashes with tunnels\[0\]"):
        parse_spec({"tunnels": [GOOD, {**GOOD, "remote": "172.12.1.12"}]})


def _inner(ttl: int = 63, tos: int = 0) -> bytearray:
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 28, 1, 0x4000, ttl, 1, 0,
                               bytes([10, 0, 1, 10]), bytes([10, 0, 2, 10])))
    ip[10:12] = struct.pack("!H", wire.checksum(bytes(ip)))
    return ip + bytearray(8)


@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_outer_header_copies_ttl_and_ecn_and_sets_df(mode: str) -> None:
    tmpl = wire.header_template(mode, "172.12.1.10", "172.12.1.11")
    inner = _inner(ttl=63, tos=0xB8 | 0x03)  # DSCP EF + CE
    buf = bytearray(tmpl) + inner
    total = wire.fill_outer(buf, len(tmpl), len(inner))
    assert total == len(tmpl) + 28
    ver, tos, length, _id, frag, ttl, proto = struct.unpack_from("!BBHHHBB", buf)
    assert (ver, tos, length, frag, ttl, proto) == (0x45, 0x02, total, 0x4000, 63, 4 if mode == "ipip" else 47)
    assert buf[12:20] == bytes([172, 12, 1, 10, 172, 12, 1, 11])
    if mode == "gre":
        assert buf[20:24] == b"\x00\x00\x08\x00"
    assert buf[len(tmpl):] == inner  # inner untouched


def _outer(mode: str, inner: bytes, src: bytes = bytes([172, 12, 1, 11]), tos: int = 0, gre: bytes = b"") -> memoryview:
    proto = 4 if mode == "ipip" else 47
    body = (gre or b"\x00\x00\x08\x00") + inner if mode == "gre" else inner
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(body), 0, 0x4000, 63, proto, 0, src,
                      bytes([172, 12, 1, 10]))
    return memoryview(bytearray(hdr + body))


REMOTE = bytes([172, 12, 1, 11])


@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_decap_returns_the_inner_packet_untouched(mode: str) -> None:
    inner = bytes(_inner())
    pkt = _outer(mode, inner)
    start, end = wire.decap(pkt, mode, REMOTE)
    assert bytes(pkt[start:end]) == inner


def test_decap_drops_what_the_kernel_would() -> None:
    inner = bytes(_inner())
    assert wire.decap(_outer("ipip", inner, src=bytes([9, 9, 9, 9])), "ipip", REMOTE) is None  # wrong remote
    assert wire.decap(_outer("ipip", b"\x60" + inner[1:]), "ipip", REMOTE) is None  # inner not IPv4
    assert wire.decap(_outer("gre", inner, gre=b"\x00\x00\x86\xdd"), "gre", REMOTE) is None  # not 0x0800
    assert wire.decap(_outer("gre", inner, gre=b"\x20\x00\x08\x00\x00\x00\x00\x07"), "gre", REMOTE) is None  # key
    assert wire.decap(_outer("gre", inner, gre=b"\x00\x01\x08\x00"), "gre", REMOTE) is None  # version 1
    assert wire.decap(_outer("ipip", inner, tos=3), "ipip", REMOTE) is None  # CE over not-ECT


def test_decap_accepts_gre_checksum_and_sequence() -> None:
    inner = bytes(_inner())
    zeroed = b"\x90\x00\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x2a"  # C and S flags
    csum = struct.pack("!H", wire.checksum(zeroed + inner))
    gre = zeroed[:4] + csum + zeroed[6:]
    start, end = wire.decap(_outer("gre", inner, gre=gre), "gre", REMOTE)
    assert (start, end) == (32, 32 + len(inner))
    bad = b"\x80\x00\x08\x00\x12\x34\x00\x00"
    assert wire.decap(_outer("gre", inner, gre=bad), "gre", REMOTE) is None


def test_decap_propagates_ce_into_ect_inner() -> None:
    pkt = _outer("ipip", bytes(_inner(tos=0x02)), tos=3)
    start, _ = wire.decap(pkt, "ipip", REMOTE)
    assert pkt[start + 1] & 3 == 3
    assert wire.checksum(pkt[start:start + 20]) == 0
