"""Safe YAML loading that keeps every value's file position for error messages."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import ClabgenError, Problem, Where


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


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None) if tag is not None else None
    return value


def _wrap(node: Any, file: str, path: str, where: Where, problems: list[Problem]) -> Y:
    tag = _tag_of(node)
    if isinstance(node, TaggedScalar) or tag is not None:
        shown = tag or getattr(getattr(node, "tag", None), "value", "?")
        problems.append(Problem(where, f"YAML tag {shown} is not allowed (clabgen loads plain YAML only)"))
        return Y(None, where)
    if isinstance(node, CommentedMap):
        out: dict[str, Y] = {}
        keys: dict[str, Where] = {}
        for k in node:
            kpos = node.lc.key(k) if node.lc.data and k in node.lc.data else None
            vpos = node.lc.value(k) if node.lc.data and k in node.lc.data else None
            kpath = _join(path, str(k))
            kw = _where(file, kpos, kpath)
            if not isinstance(k, str):
                problems.append(Problem(kw, f"key {k!r} must be a string"))
                continue
            child = _wrap(node[k], file, kpath, _where(file, vpos, kpath), problems)
            out[k] = Y(child.value, child.where, kw, child.keys)
            keys[k] = kw
        return Y(out, where, None, keys)
    if isinstance(node, CommentedSeq):
        items: list[Y] = []
        for i, item in enumerate(node):
            ipos = node.lc.item(i) if node.lc.data and i in node.lc.data else None
            ipath = _join(path, i)
            items.append(_wrap(item, file, ipath, _where(file, ipos, ipath), problems))
        return Y(items, where)
    if isinstance(node, (datetime.date, datetime.datetime)):
        return Y(str(node), where)
    if isinstance(node, bool) or node is None:
        return Y(node, where)
    if isinstance(node, int):
        return Y(int(node), where)
    if isinstance(node, float):
        return Y(float(node), where)
    if isinstance(node, str):
        return Y(str(node), where)
    problems.append(Problem(where, f"unsupported YAML value {node!r}"))
    return Y(None, where)


def load(path: Path, display: str | None = None) -> Y:
    """Load one YAML document as a positioned tree; any syntax problem is a ClabgenError."""
    file = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClabgenError(Problem(Where(file), "no such file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClabgenError(Problem(Where(file), f"cannot read: {exc}")) from None
    return loads(text, file)


def loads(text: str, file: str) -> Y:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        key = (exc.problem or "").split('"')[1] if '"' in (exc.problem or "") else "?"
        raise ClabgenError(Problem(_mark_where(file, mark, key), f"duplicate key {key!r}")) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ClabgenError(Problem(_mark_where(file, mark, ""), f"YAML syntax error: {exc.problem or exc.context}")) from None
    except YAMLError as exc:
        raise ClabgenError(Problem(Where(file, 1, 1), f"YAML error: {exc}")) from None
    root = Where(file, 1, 1, "")
    if data is None:
        raise ClabgenError(Problem(root, "the file is empty; expected a mapping with at least `name` and `sites`"))
    problems: list[Problem] = []
    tree = _wrap(data, file, "", root, problems)
    if problems:
        raise ClabgenError(*problems)
    if not tree.is_map:
        kind = "a list" if tree.is_seq else f"a {type(tree.value).__name__}"
        raise ClabgenError(Problem(root, f"the document is {kind}; expected a mapping"))
    return tree


def _mark_where(file: str, mark: Any, field: str) -> Where:
    if mark is None:
        return Where(file, 0, 0, field)
    return Where(file, mark.line + 1, mark.column + 1, field)
