"""Plan -> {relative path: bytes} through the platform templates, then one careful write."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import pickle
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import emu, graph, platforms, view, vyos_config
from .errors import ClabgenError, Problem, Where
from .planned import Plan

MANIFEST = ".clabgen-manifest.json"
Bytes = bytes | memoryview        # what a forked child hands over: a view of its anonymous file
# Routes in the plan from which expected.json is written by a forked child while the templates run
# (a 200-site hub-and-spoke has 41 000: its contract takes as long as all the gateway configs).
FORK_ROUTES = 5000


@dataclass(frozen=True)
class RenderedFile:
    path: str
    data: bytes
    mode: int = 0o644
    sha: str = field(default="", compare=False, repr=False)     # sha256 of data, where known already

    def digest(self) -> str:
        return self.sha or _sha(self.data)


class Stage:
    """Where a render's files are first written, write() then moves them into place: a directory
    beside a lab directory that does not exist yet (renamed whole), else inside it. Made when a big
    lab's gateway files are begun (start), so the children that render them write them there too,
    while this process still plans; `written` are those files. Nothing is made where the lab
    directory's parent does not exist yet (write() makes it, once the render succeeded)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path: Path | None = None
        self.written: set[str] = set()

    def make(self) -> Path | None:
        if self.path is None:
            if self.out.is_dir():
                self.path = _staging(self.out, ".clabgen-render-")
            elif not self.out.exists() and self.out.parent.is_dir():
                self.path = _staging(self.out.parent, f".{self.out.name}.clabgen-render-")
        return self.path

    def within(self, parent: Path) -> tuple[Path, set[str]] | None:
        """The directory and the files already in it, if it was made in `parent`."""
        return (self.path, self.written) if self.path is not None and self.path.parent == parent else None

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass(frozen=True)
class Started:
    """What render begins from a draft of the plan (plan.build's `drafted`: nodes, links and tunnels
    final, checks not planned yet): Graphviz draws the picture, and on a big lab a forked child
    renders the gateways' files (configs, set listings, Linux scripts: they print nodes and tunnels
    only) while this process plans the checks. Each call waits for its part."""

    picture: Callable[[], bytes]
    gateway_files: Callable[[], list[RenderedFile]] | None = None
    contract_nodes: Callable[[], Bytes] | None = None     # expected.nodes_json of the draft
    children: tuple[_Child, ...] = ()

    def stop(self) -> None:
        """Kill and reap the children whose work was not taken (the render failed meanwhile): none
        is left writing into a staging directory that is being removed."""
        for child in self.children:
            child.stop()


def start_picture(topology: Plan, previous: Path | None) -> Callable[[], bytes]:
    """Graphviz begins drawing topology.svg (a plan whose nodes may have no routes yet: the picture
    shows none); `previous` as for render(). The returned call waits for the file."""
    return graph.start_lab_svg(topology, _generated(previous, graph.SVG_FILE))


def start(draft: Plan, source: str, previous: Path | None, picture: Callable[[], bytes] | None = None,
          stage: Stage | None = None) -> Started:
    """Begin the parts of render() that need only the draft; arguments as for render(), `picture`
    start_picture() of it if begun already, `stage` where the gateways' files are to be written
    (none: they are only rendered)."""
    picture = picture or start_picture(draft, previous)
    if sum(len(n.routes) for n in draft.nodes) < FORK_ROUTES or not _can_fork():
        return Started(picture)
    # Jinja and the contract's classes imported once, before the children are forked
    platforms.load("docs").environment()
    from .expected import nodes_json_pieces
    nodes = _in_child(partial(nodes_json_pieces, draft), "writing expected.json's nodes")
    share = _children(len(draft.gateways))
    folder = stage.make() if stage is not None else None
    made = [_in_child(partial(_pickled_gateway_files, draft, source, k, share, folder), "rendering the gateways' files")
            for k in range(share)]

    def gateway_files() -> list[RenderedFile]:
        files = [RenderedFile(*f) for result in made for f in pickle.loads(result())]
        if stage is not None and folder is not None:
            stage.written.update(f.path for f in files)
        return files
    return Started(picture, gateway_files, nodes, tuple(c for c in (nodes, *made) if isinstance(c, _Child)))


def _children(gateways: int) -> int:
    """How many forked children share a big lab's gateway files: one per CPU this process may run
    on (at most 4, and at least 50 gateways each), since the parent mostly waits for them."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus, gateways // 50))


def _pickled_gateway_files(draft: Plan, source: str, k: int, share: int, folder: Path | None) -> bytes:
    """Child k of `share`: the files of every share-th gateway from the k-th (interleaved, so each
    child gets hubs and spokes alike), written into `folder` too if given."""
    ctx = view.lab_view(draft)
    mine = ctx["gateways"][k::share]
    files = _outputs(draft, source, ctx, "gateway", mine)
    if folder is not None:
        _put(files, folder)
    return pickle.dumps([(f.path, f.data, f.mode, f.digest()) for f in files])


def render(plan: Plan, source: str, previous: Path | None = None, started: Started | None = None) -> list[RenderedFile]:
    """Every generated file of the lab, in a stable order; same plan, same bytes. `previous` is the
    lab directory rendered before: its topology.svg is kept if drawn from the same source (graph.lab_svg).
    `started` is start() called with a draft of this plan."""
    # Graphviz draws the picture in its own process while the templates run (a 200-site lab's
    # layout takes as long as all its gateway configs). The contract is the other big piece: on a
    # big lab children forked at the draft write its nodes (start), or one forked here writes it all.
    if started is None:
        started = Started(start_picture(plan, previous))
    nodes = started.contract_nodes
    contract: Callable[[], bytes] | None = None
    if nodes is not None:
        from .expected import around_nodes  # the contract's classes: imported where it is written
        head, tail = around_nodes(plan, source)      # while the children still work
        contract = partial(_joined, head, nodes, tail)
    elif sum(len(n.routes) for n in plan.nodes) >= FORK_ROUTES:
        whole = _forked(partial(_expected_json, plan, source))
        contract = partial(_bytes, whole) if whole is not None else None
    files = _render_files(plan, source, contract, started.gateway_files)
    files.append(RenderedFile(graph.SVG_FILE, started.picture()))
    files.sort(key=lambda f: f.path)
    return files


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


Work = Callable[[], bytes | Iterator[bytes]]      # a child's work: its bytes, whole or in pieces


def _forked(work: Work, what: str = "writing expected.json") -> _Child | None:
    """Run work in a forked child; the returned call waits for its bytes. None (the caller does the
    work itself) where forking is not safe: no fork, or other threads in this process (a child of a
    threaded process may inherit a lock some other thread held). The child only computes and
    writes its bytes to an anonymous file (not a pipe: megabytes into a pipe would stall it until
    this process reads), which is handed over as a read-only view of that file: a big lab's
    contract is megabytes, copied once, where it is joined. An exception there is raised here with
    the child's message (the file holds it, and the exit status says which of the two it holds)."""
    if not _can_fork():
        return None
    out = _anonymous_file()
    pid = os.fork()
    if pid != 0:
        return _Child(pid, out, what)
    status = 0                                    # the child: compute, write, leave without cleanup
    try:
        try:
            made = work()
            for piece in (made,) if isinstance(made, bytes) else made:
                _write_all(out, piece)
        except BaseException as exc:              # carried to the parent, instead of the bytes
            os.ftruncate(out, 0)
            os.lseek(out, 0, os.SEEK_SET)
            _write_all(out, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
            status = 1
    finally:
        os._exit(status)


class _Child:
    """A forked child at its work (_forked); calling it waits for its bytes, once."""

    def __init__(self, pid: int, out: int, what: str) -> None:
        self.pid, self.out, self.what = pid, out, what

    def __call__(self) -> Bytes:
        status = self._reaped()
        try:
            data = _view(self.out)
        finally:
            os.close(self.out)
        if status != 0:
            why = bytes(data).decode(errors="replace") if os.WIFEXITED(status) else "the child process died"
            raise RuntimeError(f"{self.what} in a child process failed: {why}")
        return data

    def stop(self) -> None:
        """Kill it unless its bytes were taken already."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            self._reaped()
            os.close(self.out)

    def _reaped(self) -> int:
        if not self.pid:
            raise RuntimeError(f"{self.what}: the child's bytes were taken already")
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return status


def _write_all(fd: int, data: bytes) -> None:
    left = memoryview(data)
    while left:
        left = left[os.write(fd, left):]


def _view(fd: int) -> Bytes:
    """A file's bytes without reading them into this process: its pages mapped read-only."""
    size = os.fstat(fd).st_size
    return memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ)) if size else b""


def _bytes(made: Callable[[], Bytes]) -> bytes:
    data = made()
    return data if isinstance(data, bytes) else data.tobytes()


def _in_child(work: Work, what: str) -> Callable[[], Bytes]:
    """_forked(work), or work to be done here where no child can be forked."""
    return _forked(work, what) or partial(_whole, work)


def _whole(work: Work) -> bytes:
    made = work()
    return made if isinstance(made, bytes) else b"".join(made)


def _anonymous_file() -> int:
    """A descriptor of a file with no name (in memory where Linux has memfd), closed on exec."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("clabgen-render", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as f:
        return os.dup(f.fileno())


def _joined(head: bytes, middle: Callable[[], Bytes], tail: bytes) -> bytes:
    return b"".join((head, middle(), tail))


def _expected_json(plan: Plan, source: str) -> bytes:
    from .expected import expected_json  # the contract's classes: imported where it is written
    return expected_json(plan, source).encode()


def _render_files(plan: Plan, source: str, contract: Callable[[], bytes] | None = None,
                  gateway_files: Callable[[], list[RenderedFile]] | None = None) -> list[RenderedFile]:
    ctx = view.lab_view(plan)
    files = _outputs(plan, source, ctx, "gateway") if gateway_files is None else []
    files += _outputs(plan, source, ctx, "lab")
    if gateway_files is not None:
        files += gateway_files()
    files.append(RenderedFile("expected.json", contract() if contract else _expected_json(plan, source)))
    return files


def _outputs(plan: Plan, source: str, ctx: dict[str, Any], each: str,
             gateways: list[dict[str, Any]] | None = None) -> list[RenderedFile]:
    """The files of every output that is rendered once for the lab (each "lab") or per gateway
    (of `gateways`, the views of some of ctx's gateways; all by default)."""
    files: list[RenderedFile] = []
    # gateways first: the Linux scripts carry the routing daemons' config their startup config gives
    folders = sorted({g.platform for g in plan.gateways}) + list(platforms.LAB_OUTPUTS)
    for folder in folders:
        plat = platforms.load(folder)
        outputs = [out for out in plat.outputs if (out.each == "lab") == (each == "lab")]
        if not outputs:
            continue
        env = plat.environment()
        for out in outputs:
            template = env.get_template(out.template)
            if out.each == "lab":
                text = template.render(lab=ctx, source=source)
                files.append(RenderedFile(out.path.format(lab=plan.name), text.encode(), _mode(out)))
                continue
            for gw in ctx["gateways"] if gateways is None else gateways:
                if plat.role == "gateway" and gw["platform"] != folder:
                    continue
                if out.when and not gw.get(out.when):
                    continue
                text = template.render(lab=ctx, gw=gw, source=source, platform=view.platform_view(gw["platform"]))
                path = out.path.format(lab=plan.name, node=gw["name"])
                files.append(RenderedFile(path, text.encode(), _mode(out)))
                if out.startup and plat.facts.emulator and (gw.get("ospf") or gw.get("bgp")):
                    configs = emu.daemon_configs(plat.facts.emulator, text, path)
                    gw["frr"] = [{"daemon": d, "config": c} for d, c in configs.items()]
                if out.set_listing:
                    listing = "\n".join(vyos_config.boot_to_set(text)) + "\n"
                    files.append(RenderedFile(out.set_listing.format(lab=plan.name, node=gw["name"]),
                                              listing.encode()))
    return files


def _generated(out: Path | None, path: str) -> bytes | None:
    """A file of an earlier render as clabgen wrote it (None if absent or edited by hand since)."""
    if out is None:
        return None
    try:
        data = (out / path).read_bytes()
    except OSError:
        return None
    return data if _read_manifest(out).get(path) == _sha(data) else None


def _mode(out: platforms.Output) -> int:
    return 0o755 if out.executable else 0o600 if out.private else 0o644


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.get("files", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _manifest_bytes(files: list[RenderedFile]) -> bytes:
    body = {"generator": "clabgen", "files": {f.path: f.digest() for f in files}}
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def check(files: list[RenderedFile], out: Path) -> list[str]:
    """Files that differ from what is on disk (for CI on checked-in labs)."""
    diffs = []
    for f in files:
        target = out / f.path
        if not target.is_file():
            diffs.append(f"{f.path}: missing")
        elif target.read_bytes() != f.data:
            diffs.append(f"{f.path}: differs from a fresh render")
    wanted = {f.path for f in files}
    for stale in sorted(set(_read_manifest(out)) - wanted):
        if (out / stale).exists():
            diffs.append(f"{stale}: generated earlier, no longer part of the lab")
    return diffs


def _current(target: Path) -> bytes | None:
    """What a target holds now: None if absent, b"" if it is not a regular file."""
    if not target.exists():
        return None
    return target.read_bytes() if target.is_file() else b""


def write(files: list[RenderedFile], out: Path, *, force: bool = False, stage: Stage | None = None) -> list[str]:
    """Write into a temporary directory first, then move each file into place (or, for a lab
    directory that does not exist yet, the whole directory at once). `stage` is the one begun for
    this render (start), if any: the files already there are not written again.

    A file that exists but was not written by clabgen (not in the manifest), or a generated file
    edited by hand since, is never overwritten unless `force`; files clabgen did not generate are
    never deleted.
    """
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp, there = _begun(stage, out.parent) or (_staging(out.parent, f".{out.name}.clabgen-render-"), set())
        try:
            _stage(files, tmp, there)
            os.rename(tmp, out)
            return [f.path for f in files]
        except OSError:
            if not out.exists():                  # else: made meanwhile; written file by file below
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(out)
    on_disk = {f.path: _current(out / f.path) for f in files}
    blocked = []
    for f in files:
        target = out / f.path
        current = on_disk[f.path]
        if current is None or current == f.data:
            continue
        if f.path not in old:
            blocked.append(Problem(Where(str(target)), "exists and was not generated by clabgen; not overwriting",
                                   "move it away or pass --force"))
        elif old[f.path] != _sha(current):
            blocked.append(Problem(Where(str(target)), "was edited by hand since the last render; not overwriting",
                                   "edit the intent instead, or pass --force"))
    if blocked and not force:
        raise ClabgenError(*blocked)
    tmp, there = _begun(stage, out) or (_staging(out, ".clabgen-render-"), set())
    try:
        _stage(files, tmp, there)
        changed = []
        for f in files + [RenderedFile(MANIFEST, b"")]:
            target = out / f.path
            if f.path != MANIFEST and on_disk[f.path] == f.data and (target.stat().st_mode & 0o777) == f.mode:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f.path, target)
            if f.path != MANIFEST:
                changed.append(f.path)
        wanted = {f.path for f in files}
        for stale in sorted(set(old) - wanted):
            target = out / stale
            if target.is_file() and _sha(target.read_bytes()) == old[stale]:
                target.unlink()
                changed.append(f"{stale} (removed)")
        return changed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _staging(parent: Path, prefix: str) -> Path:
    """A new empty directory in parent, with the mode a plain mkdir gives (tempfile's are 0700)."""
    while True:
        tmp = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def _begun(stage: Stage | None, parent: Path) -> tuple[Path, set[str]] | None:
    return stage.within(parent) if stage is not None else None


def _stage(files: list[RenderedFile], tmp: Path, there: set[str]) -> None:
    """Every file (but those `there` already) and the manifest under tmp."""
    _put([f for f in files if f.path not in there] + [RenderedFile(MANIFEST, _manifest_bytes(files))], tmp)


def _put(files: list[RenderedFile], tmp: Path) -> None:
    """Files under tmp, each with its mode (a big lab writes 600 files: each directory is made once)."""
    made = {str(tmp)}
    for f in files:
        path = os.path.join(tmp, f.path)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, f.mode)
        with open(fd, "wb") as fh:
            os.fchmod(fd, f.mode)                 # exactly f.mode, whatever the umask
            fh.write(f.data)
