"""Deploy-time secrets: a user's keys and PSKs reach a running lab without entering its files.

When an intent names key or PSK files (and not `write_secrets: true`), the rendered config.boot
holds a placeholder where the secret leaf goes, `/* clabgen-secret LEAF FILE */` (a VyOS comment,
so the file is still valid config). A deploy reads each FILE (relative paths: from the lab's
folder), writes a private copy of the config with the leaf in place of the placeholder (same
line numbers, so FILE:LINE errors still point at the lab's config) under the lab's state
directory (/run/clabgen/<lab>/secrets/, mode 0700, files 0600), and starts the gateway from that
copy: the netns emulation loads it, docker and containerlab bind it instead of the lab's file.
Destroy removes it with the state directory. Nothing here prints a secret; a file that cannot be
used is named, never shown.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from . import keys
from .errors import ClabgenError, Problem, Where
from .labdir import LabNode, RenderedLab
from .runtimes import state

PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)/\* clabgen-secret (?P<leaf>[a-z-]+) (?P<file>\S+) \*/[ \t]*$", re.M)
# Which reader a leaf's value comes from: WireGuard keys (base64), IPsec PSKs (text).
WIREGUARD_LEAVES = {"private-key", "preshared-key"}
PSK_LEAVES = {"pre-shared-secret", "secret"}


def secrets_dir(lab: str) -> Path:
    return state.state_dir(lab) / "secrets"


def fill(text: str, base: Path, file: str) -> str | None:
    """The config with every placeholder replaced by its leaf and value; None without placeholders."""
    if "clabgen-secret" not in text:
        return None
    problems: list[Problem] = []

    def value(m: re.Match[str]) -> str:
        leaf, name = m["leaf"], m["file"]
        line = text.count("\n", 0, m.start()) + 1
        try:
            if leaf in WIREGUARD_LEAVES:
                secret = keys.b64(keys.read_wireguard_key(base / name, f"WireGuard {leaf}"))
            elif leaf in PSK_LEAVES:
                secret = keys.read_psk(base / name)
            else:
                raise keys.SecretFileError(f"no secret leaf {leaf!r} is known")
        except keys.SecretFileError as exc:
            problems.append(Problem(Where(file, line), str(exc)))
            return m.group(0)
        return f"{m['indent']}{leaf} {secret}"

    filled = PLACEHOLDER.sub(value, text)
    if problems:
        raise ClabgenError(*problems)
    return filled


def prepare(lab: RenderedLab) -> dict[str, Path]:
    """Private filled copies of the gateways' configs that have placeholders: node -> copy."""
    out: dict[str, Path] = {}
    for n in lab.nodes.values():
        if n.config is None:
            continue
        text = n.config.read_text(encoding="utf-8", errors="replace")
        try:
            filled = fill(text, lab.dir, str(n.config))
        except ClabgenError:
            remove(lab.name)
            raise
        if filled is None:
            continue
        d = secrets_dir(lab.name)
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        path = d / n.config.name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(filled)
        out[n.name] = path
    return out


def copy_of(lab: RenderedLab, node: LabNode) -> Path | None:
    """The filled copy a deploy made for this node's config, if any."""
    if node.config is None:
        return None
    path = secrets_dir(lab.name) / node.config.name
    return path if path.is_file() else None


def deploy_binds(lab: RenderedLab, node: LabNode, binds: list[str]) -> list[str]:
    """The node's binds with its startup config's source replaced by the filled copy, if it has one."""
    copy = copy_of(lab, node)
    target = node.platform.startup_config if node.platform else None
    if copy is None or target is None:
        return binds
    return [f"{copy}:{rest}" if rest.split(":")[0] == target else bind
            for bind in binds for _src, _, rest in [bind.partition(":")]]


def remove(lab: str) -> None:
    shutil.rmtree(secrets_dir(lab), ignore_errors=True)
