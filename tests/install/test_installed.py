"""Smoke tests of clabgen as users get it: sdist -> wheel -> fresh venv (and pipx), run outside the checkout.

Nothing here imports clabgen from the checkout to do the work: every command is the installed
console script, started from a temporary directory, so a file missing from the package (a
template, a recipe, the C source) or a path that only exists in the checkout fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import LABS, ROOT
from ..labutil import residue

pytestmark = pytest.mark.install

PKG = ROOT / "src" / "clabgen"
# What the package must carry besides its modules (pyproject's package-data).
DATA_FILES = sorted({p.relative_to(PKG.parent).as_posix() for d in ("templates", "recipes")
                     for p in (PKG / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
                    | {"clabgen/dataplane/fastpath.c", "clabgen/py.typed"})
# The interpreter environment must not leak the checkout into the installed tool.
DROP_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CLABGEN_DEBUG", "PIP_REQUIRE_VIRTUALENV")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    env.update(extra)
    return env


def _run(argv: list[str | Path], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{' '.join(result.args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("install")
    assert ROOT not in path.resolve().parents, f"{path} must be outside the checkout {ROOT}"
    yield path
    shutil.rmtree(path, ignore_errors=True)  # two environments, ~120 MB: not kept for pytest's last 3 runs


@pytest.fixture(scope="module")
def dist(work: Path) -> dict[str, Path]:
    """The sdist, and the wheel `python -m build` builds from that sdist (its default)."""
    src = work / "src"
    # Build from a copy of what the repository holds (not build/, *.egg-info, caches), so the
    # checkout is left untouched and stray local files cannot sneak into the package.
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
                             "pyproject.toml", "README.md", "LICENSE*", "MANIFEST.in", "setup.cfg", "src"],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout:
        for rel in listed.stdout.split("\0"):
            if rel and (ROOT / rel).is_file():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, src / rel)
    else:  # not a git checkout (an unpacked archive)
        shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
    out = work / "dist"
    _ok(_run([sys.executable, "-m", "build", "--outdir", out, src], cwd=work, timeout=600))
    sdists, wheels = sorted(out.glob("clabgen-*.tar.gz")), sorted(out.glob("clabgen-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


@pytest.fixture(scope="module")
def venv(work: Path, dist: dict[str, Path]) -> Path:
    """A fresh venv with the wheel installed the ordinary way (not editable); returns its bin dir."""
    root = work / "venv"
    _ok(_run([sys.executable, "-m", "venv", root], cwd=work))
    bin_dir = root / "bin"
    _ok(_run([bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", dist["wheel"]],
             cwd=work, timeout=600))
    where = _ok(_run([bin_dir / "python", "-c", "import clabgen; print(clabgen.__file__)"], cwd=work)).stdout.strip()
    assert Path(where).is_relative_to(root), f"clabgen imported from {where}, not from the venv"
    assert not list(root.glob("lib/python*/site-packages/__editable__*")), "an editable install crept in"
    return bin_dir


def _render_copy(clabgen: Path, lab: str, cwd: Path, name: str | None = None) -> Path:
    """Copy labs/<lab>/intent.yml into its own directory under cwd and render it there."""
    out = cwd / (name or lab)
    out.mkdir()
    text = (LABS / lab / "intent.yml").read_text()
    if name:
        text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M)
    (out / "intent.yml").write_text(text)
    result = _ok(_run([clabgen, "render", "intent.yml"], cwd=out))
    listed = sorted(line.strip() for line in result.stdout.splitlines() if line.startswith("  "))
    manifest = json.loads((out / ".clabgen-manifest.json").read_text())
    assert listed == sorted(manifest["files"]), result.stdout
    return out


def _assert_same_as_checked_in(lab: str, rendered: Path) -> None:
    files = sorted(json.loads((rendered / ".clabgen-manifest.json").read_text())["files"]) + [".clabgen-manifest.json"]
    checked_in = sorted(p.relative_to(LABS / lab).as_posix() for p in (LABS / lab).rglob("*")
                        if p.is_file() and p.name != "intent.yml")
    assert sorted(files) == checked_in
    for rel in files:
        got, want = rendered / rel, LABS / lab / rel
        assert got.read_bytes() == want.read_bytes(), f"{lab}/{rel} differs from the checked-in file"
        assert os.access(got, os.X_OK) == os.access(want, os.X_OK), f"{lab}/{rel}: executable bit differs"


def _names(archive: Path) -> list[str]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.namelist()
    with tarfile.open(archive) as t:
        return t.getnames()


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_package_ships_templates_recipes_and_c_source(dist: dict[str, Path], kind: str) -> None:
    names = _names(dist[kind])
    prefix = f"{dist['sdist'].name.removesuffix('.tar.gz')}/src/" if kind == "sdist" else ""
    missing = [f for f in DATA_FILES if prefix + f not in names]
    assert not missing, f"{dist[kind].name} lacks {missing}"
    for required in ("clabgen/recipes/node/build.sh", "clabgen/dataplane/fastpath.c"):
        assert prefix + required in names
    platforms = [n for n in names if re.fullmatch(re.escape(prefix) + r"clabgen/templates/[^/]+/platform\.yml", n)]
    assert len(platforms) == len(list((PKG / "templates").glob("*/platform.yml"))) > 0


def test_version(venv: Path, work: Path) -> None:
    shown = _ok(_run([venv / "clabgen", "--version"], cwd=work)).stdout
    installed = _ok(_run([venv / "python", "-c", "import importlib.metadata as m; print(m.version('clabgen'))"],
                         cwd=work)).stdout.strip()
    import clabgen
    assert shown == f"clabgen {installed}\n" and installed == clabgen.__version__


@pytest.mark.parametrize("lab", sorted(p.parent.name for p in LABS.glob("*/intent.yml")))
def test_render_matches_the_checked_in_lab(venv: Path, work: Path, lab: str) -> None:
    cwd = work / f"render-{lab}"
    cwd.mkdir()
    _assert_same_as_checked_in(lab, _render_copy(venv / "clabgen", lab, cwd))


@pytest.mark.parametrize("bad", ["yaml-tab.yml", "overlap-lan-lan.yml", "type-mtu-string.yml"])
def test_validate_reports_file_line_col(venv: Path, work: Path, bad: str) -> None:
    cwd = work / f"bad-{bad}"
    cwd.mkdir()
    shutil.copy2(ROOT / "tests" / "data" / "bad" / bad, cwd / bad)
    result = _run([venv / "clabgen", "validate", bad], cwd=cwd)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.match(rf"{re.escape(bad)}:\d+:\d+: \S", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_netns_deploy_verify_destroy_on_the_c_fast_path(venv: Path, work: Path) -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ip") or not shutil.which("ping"):
        pytest.skip("needs root, /dev/net/tun, iproute2 and ping (make test installs them)")
    if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler: the dataplane runs its pure-Python fallback (make test installs gcc)")
    name = f"i{uuid.uuid4().hex[:5]}-ipip"
    cwd = work / "netns"
    cwd.mkdir()
    lab = _render_copy(venv / "clabgen", "ipip", cwd, name=name)
    # An empty build cache: the C fast path is compiled from the fastpath.c inside the wheel.
    cache = str(work / "fastpath-cache")
    try:
        deployed = _run([venv / "clabgen", "deploy", lab.name, "--runtime", "netns", "--tunnels", "userspace"],
                        cwd=cwd, CLABGEN_CACHE_DIR=cache)
        assert deployed.returncode == 0, deployed.stderr
        line = next((x for x in deployed.stderr.splitlines() if "userspace tunnel dataplane running" in x), "")
        assert re.search(r"\(pid \d+, \d+ tunnel ends, C fast path\)$", line), deployed.stderr
        assert list(Path(cache).glob("fastpath-*.so"))
        pid = int(re.search(r"pid (\d+)", line).group(1))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode().startswith(str(venv.parent)), cmdline  # the installed interpreter
        verified = _run([venv / "clabgen", "verify", lab.name, "--json"], cwd=cwd, CLABGEN_CACHE_DIR=cache)
        report = json.loads(verified.stdout)
        assert verified.returncode == 0 and report["ok"], [c for c in report["checks"] if not c["ok"]]
    finally:
        destroyed = _run([venv / "clabgen", "destroy", lab.name], cwd=cwd)
    assert destroyed.returncode == 0, destroyed.stderr
    assert residue(name) == []


@pytest.fixture(scope="module")
def pipx_bin(work: Path, dist: dict[str, Path]) -> Path:
    """`pipx install <wheel>` with pipx's home, bin and man dirs in tmp (HOME stays untouched)."""
    home = work / "pipx"
    env = {"PIPX_HOME": str(home / "home"), "PIPX_BIN_DIR": str(home / "bin"), "PIPX_MAN_DIR": str(home / "man"),
           "PIPX_DEFAULT_PYTHON": sys.executable, "USE_EMOJI": "0"}
    _ok(_run([sys.executable, "-m", "pipx", "install", dist["wheel"]], cwd=work, timeout=600, **env))
    return home / "bin"


def test_pipx_install(pipx_bin: Path, work: Path) -> None:
    clabgen = pipx_bin / "clabgen"
    assert _ok(_run([clabgen, "--version"], cwd=work)).stdout.startswith("clabgen ")
    cwd = work / "pipx-render"
    cwd.mkdir()
    _assert_same_as_checked_in("ipip", _render_copy(clabgen, "ipip", cwd))
