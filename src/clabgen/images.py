"""Local node images for the docker and containerlab runtimes, built offline.

No image registry is reachable from the lab hosts, so both images are made here:

* ``clabgen/node:<hash>``: a minbase Debian (the host's release, from the host's apt
  mirror) made by ``recipes/node/build.sh`` with debootstrap, then ``docker import``.
* ``clabgen/vyos-emu:<hash>``: ``FROM clabgen/node:<hash>`` plus the pure-Python wheels of
  ``recipes/vyos-emu/requirements.txt`` and a copy of the clabgen package; ``/sbin/init`` runs
  ``python3 -m clabgen.emu.boot``. Built with ``docker build`` from a local base: no pull.

The tag is a hash of everything that goes into the image (recipe files, package list,
Debian suite, wheels, clabgen source), so an unchanged recipe is never rebuilt and a
changed one never reuses a stale image. Each image is also tagged ``:latest`` for
topologies written by hand. ``scripts/build-images.sh`` and ``make image`` call ``main()``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clabgen.errors import RuntimeFailure

NODE_REPO = "clabgen/node"
EMU_REPO = "clabgen/vyos-emu"
RECIPE_LABEL = "org.clabgen.recipe"
HASH_LEN = 12

# The recipes and the source copied into clabgen/vyos-emu ship inside the package itself.
PACKAGE_DIR = Path(__file__).resolve().parent
IGNORED_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache"}


@dataclass(frozen=True)
class BuiltImage:
    """One ensured image: what it is called, whether this call built it, and its size."""

    name: str          # "clabgen/node:3f2a..." (the tag runtimes should use)
    latest: str        # "clabgen/node:latest", moved to the same image
    recipe_hash: str
    built: bool        # False: an image with this tag already existed
    seconds: float     # time spent in this call for this image
    size_bytes: int


@dataclass(frozen=True)
class Paths:
    """Where the recipes are read from and the build cache is kept."""

    root: Path

    @property
    def node_recipe(self) -> Path:
        return self.root / "recipes" / "node"

    @property
    def emu_recipe(self) -> Path:
        return self.root / "recipes" / "vyos-emu"

    @property
    def source(self) -> Path:
        return self.root

    @property
    def cache(self) -> Path:
        return Path(os.environ.get("CLABGEN_IMAGE_CACHE", user_cache_dir() / "images"))


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/clabgen (~/.cache/clabgen): builds and downloads kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clabgen"


# ---------------------------------------------------------------- how nodes run here

# `--privileged` fails on this host (the sandbox withholds CAP_SYS_RESOURCE from the bounding
# set), so nodes get every capability the engine knows but that one: Docker 20.10 knows 38
# (not BPF, PERFMON, CHECKPOINT_RESTORE; naming those is an error), these are the other 37.
# Same set as `--cap-add ALL --cap-drop SYS_RESOURCE`.
NODE_CAPS: tuple[str, ...] = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE",
    "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT",
    "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_TIME",
    "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
)
NODE_DEVICES: tuple[str, ...] = ("/dev/net/tun",)

# Per-node options for a containerlab topology (bin/containerlab, patched: docs/containerlab.md).
CONTAINERLAB_NODE_OPTIONS: dict[str, Any] = {
    "privileged": False,
    "cap-add": list(NODE_CAPS),
    "security-opts": ["seccomp=unconfined", "systempaths=unconfined"],
    "devices": list(NODE_DEVICES),
}


def node_host_config(client: Any, **kwargs: Any) -> dict[str, Any]:
    """Engine HostConfig for a lab node: the docker CLI's
    `--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
    --security-opt systempaths=unconfined --device /dev/net/tun`.

    `systempaths=unconfined` is a CLI-side option: the engine rejects it in SecurityOpt
    ("invalid --security-opt 2"); the CLI sends empty MaskedPaths/ReadonlyPaths instead,
    which is what makes /proc/sys writable (sysctls such as ip_forward) in the node.
    Extra kwargs go to `client.api.create_host_config` (network_mode, binds, sysctls, ...).
    """
    hc = client.api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=["seccomp=unconfined"],
        devices=[f"{d}:{d}:rwm" for d in NODE_DEVICES], **kwargs,
    )
    hc["MaskedPaths"] = []
    hc["ReadonlyPaths"] = []
    return dict(hc)


def run_node(client: Any, image: str, *, name: str, command: list[str] | None = None,
             labels: dict[str, str] | None = None, network_mode: str = "none",
             **host_config: Any) -> Any:
    """Create and start a node container with `node_host_config`; returns the Container."""
    hc = node_host_config(client, network_mode=network_mode, **host_config)
    created = client.api.create_container(image, command=command, name=name, hostname=name,
                                          labels=labels or {}, host_config=hc)
    container = client.containers.get(created["Id"])
    try:
        container.start()
    except BaseException:
        container.remove(force=True)
        raise
    return container


# ---------------------------------------------------------------- hashing


def _files(top: Path) -> list[Path]:
    return sorted(
        p for p in top.rglob("*")
        if p.is_file() and not IGNORED_PARTS.intersection(p.relative_to(top).parts)
        and p.suffix not in {".pyc", ".pyo"}
    )


def _hash_tree(h: hashlib._Hash, top: Path, label: str) -> None:
    for p in _files(top):
        rel = p.relative_to(top).as_posix()
        mode = "x" if os.access(p, os.X_OK) else "-"
        h.update(f"{label}/{rel}\0{mode}\0".encode())
        h.update(p.read_bytes())
        h.update(b"\0")


def node_hash(paths: Paths, suite: str) -> str:
    h = hashlib.sha256(f"node\0{suite}\0{_arch()}\0".encode())
    _hash_tree(h, paths.node_recipe, "node")
    return h.hexdigest()[:HASH_LEN]


def emu_hash(paths: Paths, node_tag: str, wheels: Iterable[Path], wireguard_go: Path | None = None) -> str:
    h = hashlib.sha256(f"vyos-emu\0{node_tag}\0".encode())
    _hash_tree(h, paths.emu_recipe, "vyos-emu")
    if wireguard_go is not None:
        h.update(b"wireguard-go\0" + hashlib.sha256(wireguard_go.read_bytes()).digest())
    for w in sorted(wheels):
        h.update(f"wheel/{w.name}\0".encode())
        h.update(hashlib.sha256(w.read_bytes()).digest())
    _hash_tree(h, paths.source, "clabgen")
    return h.hexdigest()[:HASH_LEN]


# ---------------------------------------------------------------- host facts


def _arch() -> str:
    return os.uname().machine


def host_suite() -> str:
    """The host's Debian codename: the node image matches the host's userland."""
    env = os.environ.get("CLABGEN_DEBIAN_SUITE")
    if env:
        return env
    try:
        text = Path("/etc/os-release").read_text()
    except OSError as e:
        raise RuntimeFailure(f"cannot read /etc/os-release to pick the Debian suite: {e}") from e
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not m:
        raise RuntimeFailure("no VERSION_CODENAME in /etc/os-release; set CLABGEN_DEBIAN_SUITE")
    return m.group(1)


def debian_mirror(suite: str) -> str:
    """The Debian mirror apt already uses for `suite` (the only one reachable here)."""
    env = os.environ.get("CLABGEN_DEBIAN_MIRROR")
    if env:
        return env
    apt = Path("/etc/apt")
    candidates: list[Path] = [apt / "sources.list"]
    if (apt / "sources.list.d").is_dir():
        candidates += sorted((apt / "sources.list.d").iterdir())
    for f in candidates:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in stanza.splitlines()
                                    if ln and not ln.startswith("#") and ":" in ln)
                }
                if suite in fields.get("suites", "").split() and "deb" in fields.get("types", "").split():
                    return fields.get("uris", "").split()[0]
        else:  # one-line format: deb [opts] URI suite components
            for ln in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", ln).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                    return words[1]
    raise RuntimeFailure(f"no apt source for Debian {suite!r} in /etc/apt; set CLABGEN_DEBIAN_MIRROR")


# ---------------------------------------------------------------- docker helpers


def _existing(client: Any, name: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def _tag_latest(image: Any, repo: str) -> None:
    image.tag(repo, "latest")


def _changes(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _run(argv: list[str], log: Callable[[str], None], what: str) -> None:
    log(f"$ {' '.join(argv)}")
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise RuntimeFailure(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _prune_stale(client: Any, repo: str, *, keep: str, log: Callable[[str], None],
                 keep_last: int = 3) -> None:
    """Drop <repo>:<hash> tags beyond the `keep_last` newest (every source edit makes one).

    Recent ones stay because another process may have just got one from ensure_images()
    and not yet started its containers; images in use stay too (the engine refuses).
    """
    import docker.errors

    tagged = sorted(client.images.list(name=repo), key=lambda i: i.attrs.get("Created", ""), reverse=True)
    for image in tagged[keep_last:]:
        for tag in image.tags:
            name, _, ver = tag.rpartition(":")
            if name != repo or ver in {keep, "latest"}:
                continue
            try:
                client.images.remove(tag)
                log(f"removed stale {tag}")
            except docker.errors.APIError:
                pass


# ---------------------------------------------------------------- node image


def ensure_node(client: Any, paths: Paths, *, force: bool = False,
                log: Callable[[str], None] = print) -> BuiltImage:
    t0 = time.monotonic()
    suite = host_suite()
    digest = node_hash(paths, suite)
    name = f"{NODE_REPO}:{digest}"
    image: Any = None if force else _existing(client, name)
    built = image is None
    if built:
        if os.geteuid() != 0:
            raise RuntimeFailure("building clabgen/node needs root (debootstrap)")
        if not shutil.which("debootstrap"):
            raise RuntimeFailure("debootstrap not found; run `make deps`")
        mirror = debian_mirror(suite)
        work = paths.cache / f"node-{digest}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        rootfs, tarball = work / "rootfs", work / "rootfs.tar"
        try:
            _run(["sh", str(paths.node_recipe / "build.sh"), str(rootfs), suite, mirror,
                  str(paths.cache / "debs")], log, "debootstrap of clabgen/node")
            _run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."],
                 log, "tar of the node rootfs")
            log(f"importing {name}")
            changes = _changes(paths.node_recipe / "changes.txt") + [f"LABEL {RECIPE_LABEL}={digest}"]
            client.api.import_image_from_file(str(tarball), repository=NODE_REPO, tag=digest,
                                              changes=changes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        image = client.images.get(name)
    _tag_latest(image, NODE_REPO)
    return BuiltImage(name, f"{NODE_REPO}:latest", digest, built,
                      round(time.monotonic() - t0, 2), int(image.attrs.get("Size", 0)))


# ---------------------------------------------------------------- vyos-emu image


def _requirements(paths: Paths) -> list[str]:
    text = (paths.emu_recipe / "requirements.txt").read_text()
    return [ln.split("#")[0].strip() for ln in text.splitlines() if ln.split("#")[0].strip()]


def _wheels(paths: Paths, log: Callable[[str], None]) -> list[Path]:
    """Cached wheels for requirements.txt; pip downloads only what is missing."""
    wheel_dir = paths.cache / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    found: list[Path] = []
    for req in _requirements(paths):
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", req)
        if not m:
            raise RuntimeFailure(f"recipes/vyos-emu/requirements.txt: pin exactly (name==version): {req!r}")
        stem = f"{re.sub(r'[-_.]+', '_', m.group(1)).lower()}-{m.group(2)}-"
        hits = sorted(w for w in wheel_dir.glob("*.whl") if w.name.lower().startswith(stem))
        if not hits:
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                  "--python-version", "3.11", "-d", str(wheel_dir), req], log, f"pip download {req}")
            hits = sorted(w for w in wheel_dir.glob("*.whl") if w.name.lower().startswith(stem))
        if not hits:
            raise RuntimeFailure(f"no wheel for {req} in {wheel_dir}")
        if not hits[0].name.endswith("-none-any.whl"):
            raise RuntimeFailure(f"{hits[0].name} is not pure Python; the image takes pure wheels only")
        found.append(hits[0])
    return found


def _wireguard_go() -> Path:
    """The wireguard-go binary built on this host (`make wireguard-go`): the image carries a copy,
    for WireGuard interfaces where the host kernel (which containers share) has no wireguard."""
    from .emu.crypto import wireguard_go
    found = wireguard_go()
    if found is None:
        raise RuntimeFailure("wireguard-go is not built: run `make wireguard-go` (it goes into clabgen/vyos-emu)")
    return Path(found)


def _emu_context(paths: Paths, wheels: list[Path], ctx: Path, wireguard_go: Path) -> None:
    shutil.copy2(paths.emu_recipe / "Dockerfile", ctx / "Dockerfile")
    shutil.copy2(paths.emu_recipe / "init", ctx / "init")
    shutil.copy2(wireguard_go, ctx / "wireguard-go")
    deps = ctx / "deps"
    deps.mkdir()
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            z.extractall(deps)
    (ctx / "app").mkdir()
    shutil.copytree(paths.source, ctx / "app" / "clabgen",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))


def ensure_emu(client: Any, paths: Paths, node: BuiltImage, *, force: bool = False,
               log: Callable[[str], None] = print) -> BuiltImage:
    import docker.errors

    t0 = time.monotonic()
    wheels = _wheels(paths, log)
    wg_go = _wireguard_go()
    digest = emu_hash(paths, node.recipe_hash, wheels, wg_go)
    name = f"{EMU_REPO}:{digest}"
    image: Any = None if force else _existing(client, name)
    built = image is None
    if built:
        log(f"building {name} FROM {node.name}")
        with tempfile.TemporaryDirectory(prefix="clabgen-emu-") as tmp:
            ctx = Path(tmp)
            _emu_context(paths, wheels, ctx, wg_go)
            try:
                image, _ = client.images.build(
                    path=str(ctx), tag=name, buildargs={"BASE": node.name}, pull=False, rm=True,
                    forcerm=True, labels={RECIPE_LABEL: digest},
                )
            except docker.errors.BuildError as e:
                tail = "".join(str(c.get("stream", c.get("error", ""))) for c in list(e.build_log)[-15:])
                raise RuntimeFailure(f"docker build of {name} failed: {e.msg}\n{tail}") from e
    _tag_latest(image, EMU_REPO)
    _prune_stale(client, EMU_REPO, keep=digest, log=log)
    image.reload()
    return BuiltImage(name, f"{EMU_REPO}:latest", digest, built,
                      round(time.monotonic() - t0, 2), int(image.attrs.get("Size", 0)))


# ---------------------------------------------------------------- entry points


def ensure_images(client: Any = None, *, root: Path | None = None, force: bool = False,
                  log: Callable[[str], None] = print) -> dict[str, BuiltImage]:
    """Make sure both images exist for the current recipes and source; build what is missing.

    Returns {"node": BuiltImage, "vyos-emu": BuiltImage}; runtimes should use `.name`
    (the hashed tag), so a lab always runs the code it was deployed with.
    `root` is a clabgen package directory (default: the one this module lives in).
    """
    if client is None:
        import docker

        client = docker.from_env()
    paths = Paths(root or PACKAGE_DIR)
    if not paths.node_recipe.is_dir():
        raise RuntimeFailure(f"no image recipes under {paths.node_recipe}; this clabgen installation is incomplete")
    node = ensure_node(client, paths, force=force, log=log)
    emu = ensure_emu(client, paths, node, force=force, log=log)
    return {"node": node, "vyos-emu": emu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-images", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the tags exist")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    try:
        result = ensure_images(force=args.force, log=log)
    except RuntimeFailure as e:
        print(f"build-images: {e}", file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps({k: asdict(v) for k, v in result.items()}, indent=2))
    else:
        for _key, img in result.items():
            state = "built" if img.built else "cached"
            print(f"{img.name} ({img.latest}): {state} in {img.seconds}s, {img.size_bytes / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
