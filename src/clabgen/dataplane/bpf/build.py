"""Compile the BPF program with clang, once per source version, into clabgen's cache.

`clang -O2 -g -target bpf -mcpu=v3`: -g gives the BTF libbpf needs for the maps, v3 the atomic
fetch-and-add the outer IP ID uses (kernel 5.12+). Debian keeps asm/types.h under the multiarch
include directory, which a BPF target does not search by itself. Containers get the object the host
built (their images carry no compiler): `object_bytes` reads it from CLABGEN_BPF_OBJECT
(base64 of zlib) when that is set.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sysconfig
import tempfile
import zlib
from pathlib import Path

from ...cachedir import cache_dir
from . import source

OBJECT_ENV = "CLABGEN_BPF_OBJECT"          # the compiled object, for a node without a compiler
UNAVAILABLE_ENV = "CLABGEN_BPF_UNAVAILABLE"  # why the host could not give one (said in the node)
FLAGS = ["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Wno-unused-function"]
INSTALL_HINT = "apt-get install --no-install-recommends clang llvm libbpf-dev"


class BuildError(RuntimeError):
    """No compiled program: no compiler, headers missing, or clang refused the source."""


def _includes() -> list[str]:
    arch = sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu"
    return [f"-I{d}" for d in (f"/usr/include/{arch}",) if Path(d).is_dir()]


def compiler() -> str:
    cc = os.environ.get("CLABGEN_BPF_CC") or shutil.which("clang")
    if cc is None:
        raise BuildError(f"no clang to compile the BPF program ({INSTALL_HINT})")
    return cc


def build() -> Path:
    """Path of the object for this program and tunnel table, compiling it if no cached copy exists."""
    target = cache_dir() / f"tunnel-bpf-{source.digest(' '.join(FLAGS).encode())}.o"
    if target.exists():
        return target
    cc = compiler()
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        raise BuildError(f"libbpf's headers (bpf/bpf_helpers.h) are missing ({INSTALL_HINT})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / source.PROGRAM.name
        src.write_text(source.PROGRAM.read_text())
        (Path(tmp) / "types.h").write_text(source.types_header())
        out = Path(tmp) / target.name
        proc = subprocess.run([cc, *FLAGS, *_includes(), "-c", str(src), "-o", str(out)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{cc} failed: {proc.stderr.strip()[-2000:]}")
        os.replace(out, target)  # atomic: a concurrent build just wins or loses the race
    return target


def object_bytes() -> bytes:
    """The compiled program: from the environment (a node the host prepared), else built here."""
    given = os.environ.get(OBJECT_ENV)
    if given:
        try:
            return zlib.decompress(base64.b64decode(given))
        except (ValueError, zlib.error) as exc:
            raise BuildError(f"{OBJECT_ENV} holds no BPF object: {exc}") from None
    if os.environ.get(UNAVAILABLE_ENV):
        raise BuildError(os.environ[UNAVAILABLE_ENV])
    return build().read_bytes()


def for_environment() -> dict[str, str]:
    """What a node without a compiler needs to run BPF tunnels: the object this host built, or why
    there is none (the node says it when it falls back)."""
    try:
        data = build().read_bytes()
    except (BuildError, OSError) as exc:
        return {UNAVAILABLE_ENV: f"the host could not build the BPF program: {exc}"}
    return {OBJECT_ENV: base64.b64encode(zlib.compress(data, 9)).decode()}
