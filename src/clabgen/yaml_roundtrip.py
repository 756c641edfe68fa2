"""The slow, exact path of yamlpos: ruamel's round-trip loader for documents libyaml's fast path
does not take (tags, anchors, aliases, unusual scalars) and for every YAML error, with ruamel's
messages made to say what to fix. Imported only when such a file is read."""

from __future__ import annotations

import datetime
import warnings
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from .errors import ClabgenError, Problem, Where
from .yamlpos import MAX_VALUES, Y, _join, _where

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


def load_roundtrip(text: str, file: str) -> Y:
    """The positioned tree through ruamel's round-trip loader, with its exact error messages."""
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
