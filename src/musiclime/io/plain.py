"""Dataclasses as plain JSON-able data and back, driven by their fields and type annotations,
so a new field needs no serialiser code (the workflow's stage specs and plan use it)."""

from __future__ import annotations

import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any


def to_plain(obj) -> Any:
    """``obj`` as JSON-able data: dataclasses by their fields, recursively."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_plain(tp, value, names: dict[str, Any] | None = None) -> Any:
    """``value`` (from :func:`to_plain`) as the type annotation ``tp`` says: nested
    dataclasses, ``X | None``, ``list[X]`` and ``dict[str, X]``; anything else as it is.
    ``names``: what string annotations name that their modules do not import."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_plain(inner[0], value, names) if len(inner) == 1 else value
    if origin is list and args:
        return [from_plain(args[0], v, names) for v in value]
    if origin is dict and len(args) == 2:
        return {k: from_plain(args[1], v, names) for k, v in value.items()}
    if isinstance(tp, type) and is_dataclass(tp):
        hints = typing.get_type_hints(tp, localns=names)
        return tp(**{f.name: from_plain(hints[f.name], value[f.name], names)
                     for f in fields(tp) if f.init and f.name in value})
    return value
