"""The C fast path: compiled once per source version into a cache dir, loaded with ctypes.

Pure Python tops out well below the throughput target (see bench/bench_tunnel.py); the same loops
in C, batched with recvmmsg/sendmmsg, do not hold the GIL at all. Without a compiler we fall
back to pyloop.py and say so in the log.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..cachedir import cache_dir

SOURCE = Path(__file__).with_name("fastpath.c")


class CCounters(ctypes.Structure):
    """struct dp_counters; error is the errno that ended the loop, 0 after a clean stop."""

    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64), ("dropped", ctypes.c_uint64),
                ("error", ctypes.c_uint64), ("merged_writes", ctypes.c_uint64)]

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in ("packets", "bytes", "dropped", "error", "merged_writes")}


class CEnd(ctypes.Structure):
    """struct dp_end: one tunnel end as a dp_serve thread sees it. The pointers must outlive the
    call (forward.py keeps the header, address and counters on the Python side)."""

    _fields_ = [("tun", ctypes.c_int32), ("raw", ctypes.c_int32), ("overhead", ctypes.c_int32),
                ("format", ctypes.c_int32), ("vnet", ctypes.c_int32), ("error", ctypes.c_int32),
                ("tmpl", ctypes.c_char_p), ("remote", ctypes.c_char_p),
                ("enc", ctypes.POINTER(CCounters)), ("dec", ctypes.POINTER(CCounters)),
                ("outer_id", ctypes.c_uint16)]


FLAGS = ["-O3", "-shared", "-fPIC", "-Wall"]
# Built on the machine that runs it, so tuned for its CPU (vector checksums: half the user time);
# without -march=native support we build the portable way.
NATIVE = ["-march=native"]


def _cpu_id() -> bytes:
    """What -march=native depends on: a cache dir shared between machines must not mix builds."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return b""
    return "\n".join(sorted({line for line in lines if line.startswith(("flags", "model name"))})).encode()


def build() -> Path:
    """Path of the shared object for this fastpath.c, compiling it if no cached copy exists."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + b"\0" + " ".join(FLAGS + NATIVE).encode() + b"\0" + _cpu_id())
    target = cache_dir() / f"fastpath-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise FileNotFoundError("no C compiler (gcc/cc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        for flags in (FLAGS + NATIVE, FLAGS):
            proc = subprocess.run([cc, *flags, "-o", str(out), str(SOURCE)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                break
        else:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[-2000:]}")
        os.replace(out, target)  # atomic: a concurrent build just wins or loses the race
    return target


def load() -> ctypes.CDLL:
    """The compiled library with argument types declared (a CDLL call releases the GIL)."""
    lib = ctypes.CDLL(str(build()))
    i = ctypes.c_int
    # (the thread's share of tunnel ends, how many, stop_fd, stop flag)
    lib.dp_serve.argtypes = [ctypes.POINTER(CEnd), i, i, ctypes.POINTER(i)]
    lib.dp_serve.restype = ctypes.c_int
    return lib
