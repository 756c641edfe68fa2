"""Safe YAML loading that keeps every value's file position for error messages."""

from __future__ import annotations

import datetime
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

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
CORE_TAG = "tag:yaml.org,2002:"


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(CORE_TAG):] if tag.startswith(CORE_TAG) else tag


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None) if tag is not None else None
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _before(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    return a is not None and b is not None and (a[0], a[1]) < (b[0], b[1])


class _Walk:
    """Turns ruamel's round-trip tree into Y nodes, counting values so aliases cannot explode."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.count = 0

    def wrap(self, node: Any, path: str, where: Where) -> Y:
        self.count += 1
        if self.count > MAX_VALUES:
            raise ClabgenError(Problem(where.at(""), f"the document has more than {MAX_VALUES} values",
                                       "are YAML aliases (*name) repeating a large anchor?"))
        file, problems = self.file, self.problems
        tag = _tag_of(node)
        if isinstance(node, TaggedScalar) or tag is not None:
            shown = _show_tag(tag or "?")
            problems.append(Problem(where, f"YAML tag {shown} is not allowed", "clabgen reads plain YAML values only"))
            return Y(None, where)
        if isinstance(node, CommentedMap):
            out: dict[str, Y] = {}
            keys: dict[str, Where] = {}
            for k in node:
                kpos = tuple(node.lc.key(k)) if node.lc.data and k in node.lc.data else None
                vpos = tuple(node.lc.value(k)) if node.lc.data and k in node.lc.data else None
                # ruamel gives an empty value the position of the next token, and an alias (*x) the
                # position of its anchor: point at the key instead of at an unrelated line.
                if _before(vpos, kpos) or (node[k] is None and kpos and vpos and vpos[0] != kpos[0]):
                    vpos = kpos
                kpath = _join(path, str(k))
                kw = _where(file, kpos, kpath)  # type: ignore[arg-type, unused-ignore]
                if not isinstance(k, str):
                    problems.append(Problem(kw, f"key {k!r} must be a string"))
                    continue
                child = self.wrap(node[k], kpath, _where(file, vpos, kpath))  # type: ignore[arg-type, unused-ignore]
                out[k] = Y(child.value, child.where, kw, child.keys)
                keys[k] = kw
            return Y(out, where, None, keys)
        if isinstance(node, CommentedSeq):
            items: list[Y] = []
            last = (where.line - 1, where.col - 1)
            for i, item in enumerate(node):
                ipos = tuple(node.lc.item(i)) if node.lc.data and i in node.lc.data else None
                if _before(ipos, last):      # an alias: its anchor's position, not the item's
                    ipos = None
                ipath = _join(path, i)
                iw = _where(file, ipos, ipath) if ipos else where.at(ipath)  # type: ignore[arg-type, unused-ignore]
                items.append(self.wrap(item, ipath, iw))
                last = ipos or last  # type: ignore[assignment, unused-ignore]
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
        if isinstance(node, bytes):
            problems.append(Problem(where, "YAML tag !!binary is not allowed", "clabgen reads plain YAML values only"))
        elif isinstance(node, (set, frozenset)) or type(node).__name__ == "CommentedSet":
            problems.append(Problem(where, "YAML tag !!set is not allowed", "clabgen reads plain YAML values only"))
        else:
            problems.append(Problem(where, f"unsupported YAML value of type {type(node).__name__}"))
        return Y(None, where)


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
    return _ruamel(text, file)


def _ruamel(text: str, file: str) -> Y:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # ruamel warns (to stderr) about reused anchors
            data = yaml.load(text)
    except DuplicateKeyError as exc:
        raise ClabgenError(_duplicate_key(text, file, exc)) from None
    except MarkedYAMLError as exc:
        raise ClabgenError(_syntax_error(file, exc)) from None
    except YAMLError as exc:
        raise ClabgenError(Problem(Where(file, 1, 1), f"YAML error: {exc}")) from None
    except RecursionError:
        raise ClabgenError(Problem(Where(file, 1, 1), "the YAML is nested too deeply")) from None
    root = _root_where(file, text, data)
    if data is None:
        has_text = any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())
        what = "holds no YAML value" if has_text else ("has only comments" if text.strip() else "is empty")
        raise ClabgenError(Problem(root, f"the file {what}; expected a mapping with name, underlay and sites"))
    problems: list[Problem] = []
    try:
        tree = _Walk(file, problems).wrap(data, "", root)
    except RecursionError:
        raise ClabgenError(Problem(root, "the YAML is nested too deeply (a recursive alias?)")) from None
    if problems:
        raise ClabgenError(*problems)
    if not tree.is_map:
        raise ClabgenError(Problem(root, f"the document is {_kind(tree.value)}; expected a mapping",
                                   "an intent starts with keys such as `name:`"))
    return tree


def _root_where(file: str, text: str, data: Any) -> Where:
    """Where the document's value starts: after leading comments, blank lines and `---`."""
    lc = getattr(data, "lc", None)
    if isinstance(data, (CommentedMap, CommentedSeq)) and lc is not None and lc.line is not None:
        return Where(file, lc.line + 1, lc.col + 1, "")
    for n, line in enumerate(text.splitlines(), start=1):
        body = line.strip()
        if body and not body.startswith(("#", "%")) and body != "---":
            if body.startswith("--- "):
                return Where(file, n, len(line) - len(line.lstrip()) + 5, "")
            return Where(file, n, len(line) - len(line.lstrip()) + 1, "")
    return Where(file, 1, 1, "")


def _mark_where(file: str, mark: Any, field: str = "") -> Where:
    if mark is None:
        return Where(file, 0, 0, field)
    return Where(file, mark.line + 1, mark.column + 1, field)


def _syntax_error(file: str, exc: MarkedYAMLError) -> Problem:
    """ruamel's parser messages, made to say what to fix."""
    problem = (exc.problem or exc.context or "").strip()
    mark = exc.problem_mark or exc.context_mark
    where = _mark_where(file, mark)
    ctx = exc.context_mark
    at = f"line {ctx.line + 1}, column {ctx.column + 1}" if ctx is not None else ""
    if isinstance(exc, ComposerError) and "another document" in problem:
        return Problem(where, "a second YAML document", "an intent file holds exactly one document; remove the `---`")
    if "'\\t'" in problem or "\t" in problem:
        return Problem(where, "YAML syntax error: a tab character", "indent with spaces, not tabs")
    if problem.startswith("expected <block end>"):
        return Problem(where, "YAML syntax error: bad indentation",
                       "this line is indented differently from the lines around it")
    hint = f"{exc.context} at {at}" if exc.context and at and exc.problem else ""
    return Problem(where, f"YAML syntax error: {problem}", hint)


def _duplicate_key(text: str, file: str, exc: DuplicateKeyError) -> Problem:
    """Name the duplicated key by its full path and say where it was first written."""
    mark = exc.problem_mark
    where = _mark_where(file, mark)
    found = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = _find_duplicate(YAML(typ="rt").compose(text), "", (mark.line, mark.column))
    except Exception:  # the message without a path is still right; never let this hide the error
        found = None
    if found is None:
        key = (exc.problem or "").split('"')[1] if '"' in (exc.problem or "") else "?"
        return Problem(where, f"duplicate key {key!r}")
    path, key, first = found
    return Problem(where.at(path), f"duplicate key {key!r}", f"first written at line {first}")


def _find_duplicate(node: Node | None, path: str, pos: tuple[int, int]) -> tuple[str, str, int] | None:
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            key = str(knode.value)
            kpath = _join(path, key)
            if (knode.start_mark.line, knode.start_mark.column) == pos and key in seen:
                return kpath, key, seen[key]
            seen.setdefault(key, knode.start_mark.line + 1)
            hit = _find_duplicate(vnode, kpath, pos)
            if hit:
                return hit
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            hit = _find_duplicate(item, _join(path, i), pos)
            if hit:
                return hit
    return None


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
