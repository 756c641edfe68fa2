"""`clabgen capture`: packets on a node's interface, as pcapng for Wireshark/tshark or decoded live.

The capture runs in clabgen itself: an AF_PACKET socket opened inside the node's network namespace
(every runtime's node handle names one: a netns name, or /proc/PID/ns/net of a container), so it
works on netns, Docker and containerlab alike and needs no tool inside the node. A BPF filter is
compiled by the host's libpcap (tcpdump's library) and attached to the socket in the kernel. The
live decode pipes the same pcapng stream through the host's tcpdump (or tshark), which prints one
line per packet with the outer and the inner header of tunnel traffic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ClabgenError, Problem

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SNAPLEN = 262144
LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
PACKET_OUTGOING = 4


def linktype(hatype: int) -> int:
    """pcap's link type for a device: Ethernet framing, or raw IP (TUN devices, kernel ipip/gre)."""
    return LINKTYPE_ETHERNET if hatype in (ARPHRD_ETHER, ARPHRD_LOOPBACK) else LINKTYPE_RAW


# --- pcapng: section header, one interface, enhanced packet blocks (pcapng spec, IETF draft) -------


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def section_header(application: str) -> bytes:
    options = _option(4, application.encode()) + _option(0, b"")     # shb_userappl, opt_endofopt
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def interface_block(link: int, name: str, description: str) -> bytes:
    options = (_option(2, name.encode()) + _option(3, description.encode())     # if_name, if_description
               + _option(9, bytes([9])) + _option(0, b""))                     # if_tsresol: nanoseconds
    return _block(0x00000001, struct.pack("<HHI", link, 0, SNAPLEN) + options)


def packet_block(data: bytes, wire_len: int, ns: int, outgoing: bool) -> bytes:
    flags = _option(2, struct.pack("<I", 2 if outgoing else 1)) + _option(0, b"")   # epb_flags: direction
    body = struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(data), wire_len) + data + b"\0" * (-len(data) % 4)
    return _block(0x00000006, body + flags)


# --- BPF: compiled by libpcap for the device's link type, attached in the kernel ------------------


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


def compile_filter(expression: str, link: int) -> list[tuple[int, int, int, int]]:
    """The classic BPF program of a tcpdump filter expression, as libpcap compiles it."""
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise ClabgenError(Problem(None, "--filter needs libpcap to compile the expression, and it is not installed",
                                   "apt-get install tcpdump (it brings libpcap)"))
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    handle = lib.pcap_open_dead(link, SNAPLEN)
    prog = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) != 0:
            err = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
            raise ClabgenError(Problem(None, f"--filter {expression!r}: {err}", "a tcpdump/pcap-filter(7) expression"))
        insns = [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                 for i in range(prog.bf_len)]
        lib.pcap_freecode(ctypes.byref(prog))
        return insns
    finally:
        lib.pcap_close(handle)


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# --- the capture itself -------------------------------------------------------------------------


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    stopped_by: str = ""     # count | seconds | interrupted | decoder


def open_socket(netns: str, ifname: str, expression: str | None) -> tuple[socket.socket, int]:
    """An AF_PACKET socket on ifname inside netns (filter attached before it is bound, so no
    unfiltered packet slips in), and the pcap link type of the device."""
    from . import netlink

    def make() -> tuple[socket.socket, int]:
        probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: receives nothing yet
        try:
            probe.bind((ifname, 0))
            link = linktype(probe.getsockname()[3])
            if expression:
                _attach(probe, compile_filter(expression, link))
            probe.bind((ifname, ETH_P_ALL))
        except BaseException:
            probe.close()
            raise
        return probe, link
    try:
        return netlink.in_netns(netns, make)
    except OSError as exc:
        raise ClabgenError(Problem(None, f"cannot capture on {ifname}: {exc.strerror or exc}")) from None


def run(sock: socket.socket, write: Callable[[bytes, int, int, bool], None], count: int | None = None,
        seconds: float | None = None, alive: Callable[[], bool] = lambda: True) -> Stats:
    """Receive until `count` packets, `seconds`, Ctrl-C or `alive()` turning false; each packet goes
    to write(data, wire length, time in ns, outgoing). Ctrl-C ends it cleanly: what came is kept."""
    stats = Stats()
    buf = bytearray(SNAPLEN)
    deadline = time.monotonic() + seconds if seconds is not None else None
    sock.settimeout(0.2)
    try:
        while count is None or stats.packets < count:
            if deadline is not None and time.monotonic() >= deadline:
                stats.stopped_by = "seconds"
                break
            if not alive():
                stats.stopped_by = "decoder"
                break
            try:
                n, addr = sock.recvfrom_into(buf, 0, socket.MSG_TRUNC)
            except TimeoutError:
                continue
            ns = time.time_ns()
            write(bytes(buf[:min(n, SNAPLEN)]), n, ns, addr[2] == PACKET_OUTGOING)
            stats.packets += 1
            stats.bytes += n
        else:
            stats.stopped_by = "count"
    except KeyboardInterrupt:
        stats.stopped_by = "interrupted"
    return stats


def decoder() -> list[str]:
    """The host's one-line-per-packet decoder reading pcapng on stdin: tcpdump (outer and inner
    header of ipip/gre on one line), else tshark."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump:
        return [tcpdump, "-r", "-", "-n", "-l", "-ttttt"]   # time since the first packet
    tshark = shutil.which("tshark")
    if tshark:
        return [tshark, "-r", "-", "-l", "-n", "-t", "e", "-T", "fields", "-E", "separator=/t", "-e", "frame.number",
                "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "_ws.col.Info"]
    raise ClabgenError(Problem(None, "--decode needs tcpdump or tshark on this host",
                               "apt-get install tcpdump (or tshark); or write a file with -w FILE.pcapng"))


@dataclass
class Decoder:
    proc: subprocess.Popen[bytes]
    reader: threading.Thread | None = None

    def finish(self, timeout: float = 10.0) -> None:
        """Close its input and let it print what it has (kill it if it hangs)."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout)


def start_decoder(show: Callable[[str], None] | None = None) -> Decoder:
    """The decoder in its own session: Ctrl-C stops the capture, which then closes the decoder's input,
    so every packet captured is still printed. Its lines go to our stdout as they are, or through
    `show` (on a terminal: wrapped to its width)."""
    proc = subprocess.Popen(decoder(), stdin=subprocess.PIPE, stdout=subprocess.PIPE if show else None,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ, LC_ALL="C"))
    if show is None or proc.stdout is None:
        return Decoder(proc)
    stream = proc.stdout

    def pump() -> None:
        for raw in stream:
            show(raw.decode(errors="replace").strip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return Decoder(proc, reader)
