"""The one strict loader of config sections: a mapping -> a dataclass, typos refused.

Every config wsris reads from a file (a model's ``config.json`` architecture, a training
recipe and its sections) goes through :func:`from_mapping`, so an unknown or ill-typed
field always ends the same way: a :class:`~wsris.errors.ConfigError` naming where it is,
the field, the nearest known name, and the known fields (CLI exit code 4).

Values are checked against the field's annotation: ``int`` takes an integer (not a bool,
not ``3.0``), ``float`` a finite int or float, ``bool`` only true/false, ``str`` a string,
tuples, lists and dicts their items, ``X | None`` either; a field of another type (a
nested dataclass, ``Any``) is left to the class's own check.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import ConfigError, ManifestError

T = TypeVar("T")


def from_mapping(cls: type[T], raw: Any, where: str,
                 check: Callable[[T], Any] | None = None) -> T:
    """``cls(**raw)`` for a dataclass ``cls``; ``check(obj)`` then validates the values.

    Unknown fields, a non-mapping, and any ``TypeError``/``ValueError`` (or wsris config
    error) raised while building or checking become one :class:`ConfigError` that starts
    with ``where`` (e.g. ``"recipe.yaml: optim"``).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: unknown field(s) {unknown}{hint}; known: {sorted(known)}"
        )
    try:
        obj = cls(**raw)
        _check_types(cls, obj, where)
        if check is not None:
            check(obj)
    except ConfigError:
        raise
    except (TypeError, ValueError, ManifestError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return obj


def _check_types(cls: type, obj: Any, where: str) -> None:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved here: no type check
        return
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        problem = type_problem(hints.get(f.name, Any), value)
        if problem:
            raise ConfigError(f"{where}: field {f.name!r} is {value!r:.60}: {problem}")


def type_problem(tp: Any, value: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``tp`` (None when it does, or when the
    annotation is not one of the simple kinds checked here)."""
    if tp is Any:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        problems = [type_problem(arm, value) for arm in args]
        if any(p is None for p in problems):
            return None
        return " or ".join(p for p in problems if p)
    if tp is type(None):
        return None if value is None else "expected null"
    if tp is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else \
            "expected an integer"
    if tp is float:
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return "expected a number"
            return "expected a number, not text (YAML reads 3e-4 as text: write 3.0e-4)"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "expected a number"
        return None if math.isfinite(value) else "expected a finite number"
    if tp is str:
        return None if isinstance(value, str) else "expected a string"
    if origin is typing.Literal:
        return None if value in args else f"expected one of {list(args)}"
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return "expected a list"
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return f"expected a list of {len(args)}"
            items = list(zip(args, value, strict=True))
        else:
            item = args[0] if args else Any
            items = [(item, v) for v in value]
        for arm, v in items:
            problem = type_problem(arm, v)
            if problem:
                return f"an item is {v!r:.30}: {problem}"
        return None
    if origin is dict:
        if not isinstance(value, Mapping):
            return "expected a mapping"
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        for k, v in value.items():
            problem = type_problem(key_type, k) or type_problem(value_type, v)
            if problem:
                return f"entry {k!r:.30}: {problem}"
        return None
    return None
