"""The few libbpf calls the BPF tunnel needs, through ctypes (libbpf.so.1: iproute2 depends on it).

libbpf does the hard parts (ELF relocations, BTF-defined maps, the tc netlink dance); nothing is
pinned, so the programs and maps live exactly as long as the tc filters that hold them, i.e. as
long as the lab's interfaces. Calls that talk netlink (tc hooks) act in the calling thread's
network namespace (nsenter.entered). The verifier's words come back in the exception.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BPF_TC_INGRESS, BPF_TC_EGRESS = 1, 2
BPF_ANY = 0
LIBBPF_DEBUG = 2   # enum libbpf_print_level: WARN 0, INFO 1, DEBUG 2
TC_PRIORITY = 0xC1A6   # our filters' priority; handle 1 (one filter per hook and device)
_c = ctypes
_PRINT = _c.CFUNCTYPE(_c.c_int, _c.c_int, _c.c_char_p, _c.c_void_p)


class LibbpfError(OSError):
    """A libbpf call failed; args: errno, what and the tail of the library's own messages (all of them,
    the verifier's log among them, in `log`)."""

    log: tuple[str, ...] = ()


class TcHook(ctypes.Structure):
    _fields_ = [("sz", _c.c_size_t), ("ifindex", _c.c_int), ("attach_point", _c.c_int), ("parent", _c.c_uint32)]


class TcOpts(ctypes.Structure):
    _fields_ = [("sz", _c.c_size_t), ("prog_fd", _c.c_int), ("flags", _c.c_uint32), ("prog_id", _c.c_uint32),
                ("handle", _c.c_uint32), ("priority", _c.c_uint32)]


class ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info (the kernel fills what fits)."""

    _fields_ = [("type", _c.c_uint32), ("id", _c.c_uint32), ("tag", _c.c_uint8 * 8),
                ("jited_prog_len", _c.c_uint32), ("xlated_prog_len", _c.c_uint32),
                ("jited_prog_insns", _c.c_uint64), ("xlated_prog_insns", _c.c_uint64), ("load_time", _c.c_uint64),
                ("created_by_uid", _c.c_uint32), ("nr_map_ids", _c.c_uint32), ("map_ids", _c.c_uint64),
                ("name", _c.c_char * 16)]


class MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info."""

    _fields_ = [("type", _c.c_uint32), ("id", _c.c_uint32), ("key_size", _c.c_uint32), ("value_size", _c.c_uint32),
                ("max_entries", _c.c_uint32), ("map_flags", _c.c_uint32), ("name", _c.c_char * 16)]


_messages = threading.local()


@functools.cache
def lib() -> _c.CDLL:
    """libbpf.so.1 with the signatures used here; OSError when it is not installed."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    so = _c.CDLL(name, use_errno=True)
    vp, i, u32, sz = _c.c_void_p, _c.c_int, _c.c_uint32, _c.c_size_t
    for fn, args, res in (
        ("bpf_object__open_mem", [vp, sz, vp], vp), ("bpf_object__load", [vp], i), ("bpf_object__close", [vp], None),
        ("bpf_object__find_program_by_name", [vp, _c.c_char_p], vp), ("bpf_program__fd", [vp], i),
        ("bpf_object__find_map_by_name", [vp, _c.c_char_p], vp), ("bpf_map__fd", [vp], i),
        ("bpf_map_update_elem", [i, vp, vp, _c.c_uint64], i), ("bpf_map_lookup_elem", [i, vp, vp], i),
        ("bpf_tc_hook_create", [_c.POINTER(TcHook)], i), ("bpf_tc_attach", [_c.POINTER(TcHook), _c.POINTER(TcOpts)], i),
        ("bpf_prog_get_fd_by_id", [u32], i), ("bpf_map_get_fd_by_id", [u32], i),
        ("bpf_obj_get_info_by_fd", [i, vp, _c.POINTER(u32)], i), ("libbpf_set_print", [_PRINT], vp),
    ):
        f = getattr(so, fn)
        f.argtypes, f.restype = args, res
    so.libbpf_set_print(_print)
    return so


def _print_into_thread(level: int, fmt: bytes, args: int) -> int:
    """libbpf's warnings and notes (the verifier log among them) go to the thread that made the call;
    its debug chatter (thousands of lines per load, a 16 MB buffer each) is dropped."""
    lines = getattr(_messages, "lines", None)
    if lines is not None and level < LIBBPF_DEBUG:
        buf = _c.create_string_buffer(1 << 24)   # the verifier's log comes as one message
        _libc().vsnprintf(buf, len(buf), fmt, _c.c_void_p(args))
        lines.extend(buf.value.decode(errors="replace").rstrip().splitlines())
    return 0


_print = _PRINT(_print_into_thread)   # a module global: the C side keeps calling it



@functools.cache
def _libc() -> _c.CDLL:
    libc = _c.CDLL(None)
    libc.vsnprintf.argtypes = [_c.c_char_p, _c.c_size_t, _c.c_char_p, _c.c_void_p]
    return libc


@contextmanager
def _collect() -> Iterator[list[str]]:
    _messages.lines = []
    try:
        yield _messages.lines
    finally:
        _messages.lines = None


def _check(rc: int, what: str, said: list[str] | None = None) -> int:
    if rc < 0:
        code = -rc
        tail = "\n".join(line for line in (said or [])[-8:] if line)
        err = LibbpfError(code, f"{what}: {os.strerror(code)}" + (f"\n{tail}" if tail else ""))
        err.log = tuple(said or ())
        raise err
    return rc


class LoadedObject:
    """A loaded BPF object: its programs' and maps' fds until close()."""

    def __init__(self, data: bytes, name: str = "clabgen_tunnel") -> None:
        so = lib()
        self._buf = _c.create_string_buffer(data, len(data))
        with _collect() as said:
            self._obj = so.bpf_object__open_mem(self._buf, len(data), None)
            if not self._obj:
                _check(-(_c.get_errno() or errno.EINVAL), "opening the BPF object", said)
            try:
                _check(so.bpf_object__load(self._obj), "loading the BPF programs (the kernel's verifier)", said)
            except LibbpfError:
                self.close()
                raise

    def prog_fd(self, name: str) -> int:
        prog = lib().bpf_object__find_program_by_name(self._obj, name.encode())
        if not prog:
            raise LibbpfError(errno.ENOENT, f"no program {name} in the BPF object")
        return int(lib().bpf_program__fd(prog))

    def map_fd(self, name: str) -> int:
        found = lib().bpf_object__find_map_by_name(self._obj, name.encode())
        if not found:
            raise LibbpfError(errno.ENOENT, f"no map {name} in the BPF object")
        return int(lib().bpf_map__fd(found))

    def close(self) -> None:
        """Drop our references; attached programs (and the maps they use) stay with their filters."""
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = None


def update(map_fd: int, key: bytes, value: bytes) -> None:
    _check(lib().bpf_map_update_elem(map_fd, key, value, BPF_ANY), "writing a BPF map entry")


def lookup(map_fd: int, key: bytes, size: int) -> bytes | None:
    out = _c.create_string_buffer(size)
    rc = lib().bpf_map_lookup_elem(map_fd, key, out)
    return out.raw if rc == 0 else None


def attach(ifindex: int, prog_fd: int, egress: bool = False) -> None:
    """A direct-action cls_bpf filter on the device's clsact ingress (or egress; the qdisc made if
    missing), in the calling thread's namespace. A filter of ours already there is replaced."""
    so = lib()
    hook = TcHook(_c.sizeof(TcHook), ifindex, BPF_TC_EGRESS if egress else BPF_TC_INGRESS, 0)
    rc = so.bpf_tc_hook_create(_c.byref(hook))
    if rc < 0 and -rc != errno.EEXIST:
        _check(rc, f"adding the clsact qdisc to ifindex {ifindex}")
    opts = TcOpts(_c.sizeof(TcOpts), prog_fd, 1, 0, 1, TC_PRIORITY)   # flags 1: BPF_TC_F_REPLACE
    _check(so.bpf_tc_attach(_c.byref(hook), _c.byref(opts)),
           f"attaching to ifindex {ifindex} (tc {'egress' if egress else 'ingress'})")


def prog_loaded(prog_id: int) -> bool:
    """Whether the kernel still holds the program with this id."""
    fd = lib().bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return False
    os.close(fd)
    return True


def prog_maps(prog_id: int) -> dict[str, int]:
    """Map name -> fd for the maps a loaded program uses (the caller closes the fds)."""
    so = lib()
    fd = so.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return {}
    try:
        info = ProgInfo()
        size = _c.c_uint32(_c.sizeof(info))
        if so.bpf_obj_get_info_by_fd(fd, _c.byref(info), _c.byref(size)) < 0 or not info.nr_map_ids:
            return {}
        ids = (_c.c_uint32 * info.nr_map_ids)()
        info2 = ProgInfo(nr_map_ids=info.nr_map_ids, map_ids=_c.cast(ids, _c.c_void_p).value or 0)
        size = _c.c_uint32(_c.sizeof(info2))
        if so.bpf_obj_get_info_by_fd(fd, _c.byref(info2), _c.byref(size)) < 0:
            return {}
    finally:
        os.close(fd)
    out: dict[str, int] = {}
    for map_id in ids:
        mfd = so.bpf_map_get_fd_by_id(map_id)
        if mfd < 0:
            continue
        minfo = MapInfo()
        msize = _c.c_uint32(_c.sizeof(minfo))
        if so.bpf_obj_get_info_by_fd(mfd, _c.byref(minfo), _c.byref(msize)) == 0 and minfo.name:
            out[minfo.name.decode()] = mfd
        else:
            os.close(mfd)
    return out


def available() -> str | None:
    """None if libbpf loads here, else why not."""
    try:
        lib()
    except (OSError, AttributeError) as exc:
        return f"libbpf.so.1 is missing or too old ({exc}; apt-get install libbpf1)"
    return None
