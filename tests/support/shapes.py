"""Checking a value read back from JSON against the TypedDict that declares it (TypedDicts are not checked when a
program runs): the declaration of an output contract must match what the code writes."""

from __future__ import annotations

import types
import typing
from typing import Any


def mismatches(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Where `value` departs from `shape`: a key not declared, a required key missing, in every nested TypedDict
    (through lists, dicts of them and optionals); values of other types are not checked."""
    if typing.is_typeddict(shape):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        hints = typing.get_type_hints(shape)
        out = [f"{where}.{key}: not declared in {shape.__name__}" for key in value if key not in hints]
        out += [f"{where}.{key}: missing" for key in shape.__required_keys__ if key not in value]
        for key, hint in hints.items():
            if key in value:
                out += mismatches(value[key], hint, f"{where}.{key}")
        return out
    origin, args = typing.get_origin(shape), typing.get_args(shape)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        found = [mismatches(value, arg, where) for arg in args if arg is not type(None)]
        return min(found, key=len) if found else []
    if origin is list and isinstance(value, list):
        return [m for i, item in enumerate(value) for m in mismatches(item, args[0], f"{where}[{i}]")]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return [m for key, item in value.items() for m in mismatches(item, args[1], f"{where}.{key}")]
    return []
