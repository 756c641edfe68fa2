"""Frozen dataclasses <-> JSON data, strictly: the files other processes read back are typed.

`to_data` turns a dataclass tree into plain JSON data; `from_data` rebuilds it, checking every
field's type against the annotations and naming the path of the first thing that is wrong
(`nodes[2].routes[0].metric: expected an integer, got "20"`). A field's JSON name can differ
from its Python name with `field(metadata={"json": "from"})`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Union


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
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return from_data(rest[0], data, path)
        raise CodecError(path, f"unsupported union {tp}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, path)
    if origin is tuple:
        if not isinstance(data, list):
            raise CodecError(path, f"expected a list, got {_kind(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], x, f"{path}[{i}]") for i, x in enumerate(data))
        if len(data) != len(args):
            raise CodecError(path, f"expected {len(args)} items, got {len(data)}")
        return tuple(from_data(a, x, f"{path}[{i}]") for i, (a, x) in enumerate(zip(args, data)))
    if origin is dict:
        if not isinstance(data, dict):
            raise CodecError(path, f"expected an object, got {_kind(data)}")
        return {str(k): from_data(args[1], v, f"{path}.{k}" if path else str(k)) for k, v in data.items()}
    if tp is Any:
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise CodecError(path, f"expected a boolean, got {_kind(data)}")
        return data
    if tp is int:
        if not isinstance(data, int) or isinstance(data, bool):
            raise CodecError(path, f"expected an integer, got {_kind(data)}")
        return data
    if tp is float:
        if not isinstance(data, (int, float)) or isinstance(data, bool):
            raise CodecError(path, f"expected a number, got {_kind(data)}")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise CodecError(path, f"expected a string, got {_kind(data)}")
        return data
    raise CodecError(path, f"unsupported type {tp}")


def _dataclass(cls: Any, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise CodecError(path, f"expected an object, got {_kind(data)}")
    hints = _hints(cls)
    fields = {json_name(f): f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise CodecError(where, f"unknown field (known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CodecError(sub, "missing")
            continue
        kwargs[f.name] = from_data(hints[f.name], data[name], sub)
    return cls(**kwargs)
