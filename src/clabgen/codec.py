"""Frozen dataclasses <-> JSON data, strictly: the files other processes read back are typed.

`to_data` turns a dataclass tree into plain JSON data; `from_data` rebuilds it, checking every
field's type against the annotations and naming the path of the first thing that is wrong
(`nodes[2].routes[0].metric: expected an integer, got "20"`). A field's JSON name can differ
from its Python name with `field(metadata={"json": "from"})`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, TypeVar, Union

_quote = json.encoder.encode_basestring_ascii   # C: the same escapes json.dumps uses (ensure_ascii)


T = TypeVar("T")


def made(cls: type[T], values: dict[str, Any]) -> T:
    """`cls(**values)` for a frozen dataclass given every field (no __post_init__, no slots), without
    its __init__'s one object.__setattr__ per field: a big lab makes routes by the tens of thousands."""
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


class CodecError(ValueError):
    """Data that does not fit the type it is read as; `path` says where."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def json_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("json", f.name))


def to_data(obj: Any) -> Any:
    """Plain JSON data (dicts, lists, str, int, float, bool, None) for a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # a field marked omit_empty is left out while empty: older files keep their exact bytes
        return {json_name(f): to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_empty") and not getattr(obj, f.name))}
    if isinstance(obj, (tuple, list)):
        return [to_data(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


@cache
def _names(cls: Any) -> tuple[tuple[str, str], ...]:
    """(quoted JSON name, attribute) of each field, in order."""
    return tuple((_quote(json_name(f)), f.name) for f in dataclasses.fields(cls))


def to_json(obj: Any) -> str:
    """Exactly `json.dumps(to_data(obj), indent=2)`, written in one pass over the dataclass tree:
    a big lab's contract (tens of thousands of routes) is not first copied into dicts and then
    encoded by json's pure-Python indenting encoder."""
    return to_json_at(obj, "\n")


def to_json_at(obj: Any, nl: str) -> str:
    """to_json of a value that stands in a bigger document, on a line indented as nl ("\n" and the
    indentation) says; its first line is not indented (it follows its key)."""
    out: list[str] = []
    _emit(obj, nl, out)
    return "".join(out)


def to_json_pieces(obj: Any, nl: str, texts: int = 4096) -> Iterator[str]:
    """to_json_at(obj, nl) in pieces of `texts` emitted texts each (a big lab's routes: a megabyte
    or so), for writing out without first joining megabytes into one string."""
    out: list[str] = []
    _emit(obj, nl, out)
    for i in range(0, len(out), texts):
        yield "".join(out[i:i + texts])


def _leaf(value: Any) -> str | None:
    """The JSON of a scalar or an empty list, None for anything else (most values are leaves: one
    dict lookup instead of a recursive call each)."""
    f = _LEAVES.get(type(value))
    return f(value) if f is not None else None


_LEAVES: dict[type, Any] = {
    str: _quote, int: int.__repr__, bool: lambda b: "true" if b else "false", type(None): lambda _: "null",
    float: json.dumps, tuple: lambda t: None if t else "[]", list: lambda t: None if t else "[]",
}


def _is_record(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _emit(obj: Any, nl: str, out: list[str]) -> None:
    """Append obj's JSON; nl is the newline plus the indentation of obj's own line."""
    leaf = _leaf(obj)
    if leaf is not None:
        out.append(leaf)
        return
    inner = nl + "  "
    if isinstance(obj, (tuple, list)):
        _items(obj, inner, out)
        out.append(nl + "]")
        return
    if isinstance(obj, dict):
        items = [(_quote(str(k)), v) for k, v in obj.items()]
    elif _is_record(obj):
        _record(obj.__class__)(obj, nl, out)
        return
    else:
        out.append(json.dumps(obj))
        return
    if not items:
        out.append("{}")
        return
    sep = "{" + inner
    for quoted, v in items:
        leaf = _leaf(v)
        if leaf is not None:
            out.append(sep + quoted + ": " + leaf)
        else:
            out.append(sep + quoted + ": ")
            _emit(v, inner, out)
        sep = "," + inner
    out.append(nl + "}")


def _items(items: tuple[Any, ...] | list[Any], inner: str, out: list[str]) -> None:
    """A non-empty list's items, each on its own line; records of the first item's class (a
    node's routes) go straight to that class's emitter."""
    cls: Any = type(items[0])
    record = _record(cls) if _is_record(items[0]) else None
    sep = "[" + inner
    for x in items:
        if record is not None and type(x) is cls:
            out.append(sep)
            record(x, inner, out)
        elif (leaf := _leaf(x)) is not None:
            out.append(sep + leaf)
        else:
            out.append(sep)
            _emit(x, inner, out)
        sep = "," + inner


_WRITTEN_AS: dict[type, type] = {}


def write_as(cls: type, spec: type) -> None:
    """Write objects of the dataclass `cls` as records of the dataclass `spec`: spec's fields, JSON
    names and order, each read from cls's attribute of the same name (so every field of spec must
    be one of cls's). A big lab's planned routes are written so, not first copied into the
    contract's classes (41 000 objects made only to be written)."""
    have = {f.name for f in dataclasses.fields(cls)}
    missing = [f.name for f in dataclasses.fields(spec) if f.name not in have]
    if missing:
        raise TypeError(f"{cls.__name__} cannot be written as {spec.__name__}: no field {', '.join(missing)}")
    _WRITTEN_AS[cls] = spec
    _record.cache_clear()


@cache
def _record(cls: Any) -> Callable[[Any, str, list[str]], None]:
    """The emitter of one dataclass (generated once per class): a record whose fields are all
    leaves (a big lab's tens of thousands of routes) is one %-format of its fields' texts, with
    strings, None and ints written inline; any other record goes field by field (_fields)."""
    cls = _WRITTEN_AS.get(cls, cls)
    names = _names(cls)
    if not names:
        return lambda obj, nl, out: out.append("{}")
    fields = dataclasses.fields(cls)
    if any(f.metadata.get("omit_empty") for f in fields):
        # as to_data: a field marked omit_empty is left out while empty (few objects have such fields)
        return lambda obj, nl, out: _emit({json_name(f): getattr(obj, f.name) for f in fields
                                           if not (f.metadata.get("omit_empty") and not getattr(obj, f.name))}, nl, out)
    lines = ["def emit(obj, nl, out):"]
    for k, (_, attr) in enumerate(names):
        lines += [f"    v = obj.{attr}",
                  "    c = type(v)",
                  f"    if c is str: t{k} = quote(v)",
                  f"    elif v is None: t{k} = 'null'",
                  f"    elif c is int: t{k} = int_text(v)",
                  f"    elif c is tuple and not v: t{k} = '[]'",
                  "    else:",
                  "        f = leaves(c)",
                  f"        t{k} = f(v) if f is not None else None",
                  f"        if t{k} is None: return by_field(obj, nl, out)",
                  ]
    lines += ["    fmt = formats.get(nl)",
              "    if fmt is None: fmt = formats[nl] = record_format(nl)",
              f"    out.append(fmt % ({', '.join(f't{k}' for k in range(len(names)))},))"]

    def record_format(nl: str) -> str:
        inner = nl + "  "
        return "{" + inner + ("," + inner).join(q.replace("%", "%%") + ": %s" for q, _ in names) + nl + "}"
    scope: dict[str, Any] = {"quote": _quote, "int_text": int.__repr__, "leaves": _LEAVES.get, "formats": {},
                             "record_format": record_format, "by_field": _fields(cls)}
    exec("\n".join(lines), scope)     # only the class's own field names go into the code
    return scope["emit"]  # type: ignore[no-any-return]


def _fields(cls: Any) -> Callable[[Any, str, list[str]], None]:
    """The emitter of a record with nested values, its fields unrolled: each field costs a lookup
    and an append, the same text _emit's dict branch would write."""
    lines = ["def emit(obj, nl, out):", "    inner = nl + '  '", "    comma = ',' + inner"]
    for k, (quoted, attr) in enumerate(_names(cls)):
        head = ("'{' + inner + " if k == 0 else "comma + ") + repr(quoted + ": ")
        lines += [f"    v = obj.{attr}",
                  "    f = leaves(type(v))",
                  "    text = f(v) if f is not None else None",
                  "    if text is not None:",
                  f"        out.append({head} + text)",
                  "    else:",
                  f"        out.append({head})",
                  "        emit_any(v, inner, out)"]
    lines.append("    out.append(nl + '}')")
    scope: dict[str, Any] = {"leaves": _LEAVES.get, "emit_any": _emit}
    exec("\n".join(lines), scope)
    return scope["emit"]  # type: ignore[no-any-return]


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def from_data(tp: Any, data: Any, path: str = "") -> Any:
    """`data` read as type `tp` (a dataclass, X | None, tuple[X, ...], tuple[X, Y], dict[str, X],
    str, int, float, bool); raises CodecError naming the path of the first mismatch."""
    try:
        return _reader(tp)(data)
    except CodecError as exc:
        if not path:
            raise
        raise CodecError(_sub(path, exc.path), exc.message) from None


# Reading goes through one reader function per type, built once: a big lab's contract (tens of
# thousands of routes, read by every deploy, verify and destroy) is not re-inspected field by
# field. A path is only put together when something is wrong: each reader raises with the path
# below it and its callers prefix their own part.


def _sub(head: str, tail: str) -> str:
    """Join path parts: `a` + `b` -> `a.b`, `a` + `[0].b` -> `a[0].b`."""
    if not tail:
        return head
    if not head:
        return tail.lstrip(".")
    return head + tail if tail.startswith("[") else f"{head}.{tail}"


def _at(part: str, exc: CodecError) -> CodecError:
    return CodecError(_sub(part, exc.path), exc.message)


Reader = Callable[[Any], Any]


def _scalar(tp: Any, ok: Callable[[Any], bool], what: str, convert: Reader | None = None) -> Reader:
    def read(data: Any) -> Any:
        if not ok(data):
            raise CodecError("", f"expected {what}, got {_kind(data)}")
        return convert(data) if convert else data
    return read


@cache
def _reader(tp: Any) -> Reader:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            def unsupported(data: Any) -> Any:
                if data is None and type(None) in args:
                    return None
                raise CodecError("", f"unsupported union {tp}")
            return unsupported
        inner = _reader(rest[0])
        nullable = type(None) in args
        return lambda data: None if data is None and nullable else inner(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_reader(tp)
    if origin is tuple:
        return _tuple_reader(args)
    if origin is dict:
        value = _reader(args[1])

        def read_dict(data: Any) -> Any:
            if not isinstance(data, dict):
                raise CodecError("", f"expected an object, got {_kind(data)}")
            out = {}
            for k, v in data.items():
                try:
                    out[str(k)] = value(v)
                except CodecError as exc:
                    raise _at(str(k), exc) from None
            return out
        return read_dict
    if tp is Any:
        return lambda data: data
    if tp is bool:
        return _scalar(tp, lambda d: isinstance(d, bool), "a boolean")
    if tp is int:
        return _scalar(tp, lambda d: isinstance(d, int) and not isinstance(d, bool), "an integer")
    if tp is float:
        return _scalar(tp, lambda d: isinstance(d, (int, float)) and not isinstance(d, bool), "a number", float)
    if tp is str:
        return _scalar(tp, lambda d: isinstance(d, str), "a string")

    def unknown(data: Any) -> Any:
        raise CodecError("", f"unsupported type {tp}")
    return unknown


def _tuple_reader(args: tuple[Any, ...]) -> Reader:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _reader(args[0])

        def read_items(data: Any) -> Any:
            if not isinstance(data, list):
                raise CodecError("", f"expected a list, got {_kind(data)}")
            try:
                return tuple([item(x) for x in data])
            except CodecError:
                pass
            for i, x in enumerate(data):      # again, to say which item
                try:
                    item(x)
                except CodecError as exc:
                    raise _at(f"[{i}]", exc) from None
            raise AssertionError("unreachable")
        return read_items
    readers = [_reader(a) for a in args]

    def read_fixed(data: Any) -> Any:
        if not isinstance(data, list):
            raise CodecError("", f"expected a list, got {_kind(data)}")
        if len(data) != len(readers):
            raise CodecError("", f"expected {len(readers)} items, got {len(data)}")
        out = []
        for i, (r, x) in enumerate(zip(readers, data)):
            try:
                out.append(r(x))
            except CodecError as exc:
                raise _at(f"[{i}]", exc) from None
        return tuple(out)
    return read_fixed


def _dataclass_reader(cls: Any) -> Reader:
    hints = _hints(cls)
    fields = {json_name(f): f for f in dataclasses.fields(cls) if f.init}
    known = frozenset(fields)
    plan = [(name, f.name, f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
             _reader(hints[f.name])) for name, f in fields.items()]

    def read(data: Any) -> Any:
        if not isinstance(data, dict):
            raise CodecError("", f"expected an object, got {_kind(data)}")
        if not known.issuperset(data):
            unknown = sorted(set(data) - known)
            raise CodecError(unknown[0], f"unknown field (known: {', '.join(fields)})")
        kwargs: dict[str, Any] = {}
        for name, attr, required, reader in plan:
            if name not in data:
                if required:
                    raise CodecError(name, "missing")
                continue
            try:
                kwargs[attr] = reader(data[name])
            except CodecError as exc:
                raise _at(name, exc) from None
        return cls(**kwargs)
    return read
