"""Safe YAML loading that keeps every value's file position for error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ClabgenError, Problem, Where

_CLoader = getattr(yaml, "CSafeLoader", None)     # libyaml, when PyYAML was built with it


@dataclass(frozen=True)
class Y:
    """A YAML value with where it stands; maps hold `dict[str, Y]`, sequences `list[Y]`."""

    value: Any
    where: Where
    key_where: Where | None = None
    keys: dict[str, Where] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)


def _where(file: str, pos: tuple[int, int] | None, path: str) -> Where:
    if pos is None:
        return Where(file, 0, 0, path)
    return Where(file, pos[0] + 1, pos[1] + 1, path)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


MAX_VALUES = 100_000   # more than any lab needs; stops alias bombs ("billion laughs") early


def load(path: Path, display: str | None = None) -> Y:
    """Load one YAML document as a positioned tree; any syntax problem is a ClabgenError."""
    file = display or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ClabgenError(Problem(Where(file), "no such file")) from None
    except IsADirectoryError:
        raise ClabgenError(Problem(Where(file), "is a directory, not an intent file")) from None
    except OSError as exc:
        raise ClabgenError(Problem(Where(file), f"cannot read: {exc.strerror or exc}")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ClabgenError(Problem(Where(file, line, col), f"not UTF-8 text (byte 0x{data[exc.start]:02x})")) from None
    return loads(text, file)


def loads(text: str, file: str) -> Y:
    """The positioned tree of one document: libyaml's fast path for the plain intents nearly all
    files are, ruamel (and its exact messages) for everything else."""
    fast = _fast(text, file)
    if fast is not None:
        return fast
    from .yaml_roundtrip import load_roundtrip  # ruamel is imported only for such a file
    return load_roundtrip(text, file)


# --- the fast path ------------------------------------------------------------------------------
#
# ruamel's round-trip loader is pure Python: a written-out 500-site intent (1 000 lines) takes a
# second to load. libyaml (PyYAML's C parser) composes the same document in milliseconds, with
# the same positions. It is used only where both read a document alike: plain scalars typed by a
# narrow YAML 1.2 subset (strings, decimal integers, true/false, null), no tags, anchors, aliases,
# merge keys, directives or duplicate keys. Anything else, and every error, goes to ruamel, which
# reports it as before. tests/test_yamlpos.py compares both on every intent in the repository.

_DOTTED = re.compile(r"[0-9]+(\.[0-9]+){2,}(/[0-9]+)?")     # addresses and prefixes: strings
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


class _Slow(Exception):
    """The document needs ruamel."""


def _fast(text: str, file: str) -> Y | None:
    if _CLoader is None or any(c in text for c in "!&*\t") or "<<" in text or text.startswith("%") or "\n%" in text:
        return None
    try:
        node = yaml.compose(text, Loader=_CLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    root = Where(file, node.start_mark.line + 1, node.start_mark.column + 1, "")
    try:
        return _FastWalk(file).wrap(node, "", root)
    except (_Slow, RecursionError):
        return None


def _scalar(node: Any) -> Any:
    value = node.value
    if node.style:                      # quoted or block: a string as written
        return value
    if value in _NULLS:
        return None
    if value in _BOOLS:
        return _BOOLS[value]
    if _INT.fullmatch(value):
        return int(value)
    if value[0] in "0123456789+-." and not _DOTTED.fullmatch(value):
        raise _Slow()                  # floats, octal, hex, dates, 1:20 ...: ruamel types them
    return value


class _FastWalk:
    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0

    def at(self, mark: Any, path: str) -> Where:
        return Where(self.file, mark.line + 1, mark.column + 1, path)

    def wrap(self, node: Any, path: str, where: Where) -> Y:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Slow()
        if isinstance(node, yaml.ScalarNode):
            return Y(_scalar(node), where)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                if isinstance(item, yaml.ScalarNode) and not item.style and item.value == "":
                    raise _Slow()       # an empty item: ruamel places it
                ipath = _join(path, i)
                items.append(self.wrap(item, ipath, self.at(item.start_mark, ipath)))
            return Y(items, where)
        out: dict[str, Y] = {}
        keys: dict[str, Where] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise _Slow()
            key = _scalar(knode)
            if not isinstance(key, str) or key in out:
                raise _Slow()          # a key that is not a string, or written twice
            kpath = _join(path, key)
            kw = self.at(knode.start_mark, kpath)
            vw = self.at(vnode.start_mark, kpath)
            child = self.wrap(vnode, kpath, vw)
            if child.value is None and (vnode.value == "" or vw.line != kw.line):
                child = Y(None, kw.at(kpath))        # an empty value points at its key, as with ruamel
            out[key] = Y(child.value, child.where, kw, child.keys)
            keys[key] = kw
        return Y(out, where, None, keys)
