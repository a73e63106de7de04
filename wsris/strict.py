"""The one strict loader of config sections: a mapping -> a dataclass, typos refused.

Every config wsris reads from a file (a model's ``config.json`` architecture, a training
recipe and its sections) goes through :func:`from_mapping`, so an unknown or ill-typed
field always ends the same way: a :class:`~wsris.errors.ConfigError` naming where it is,
the field, the nearest known name, and the known fields (CLI exit code 4).
"""

from __future__ import annotations

import dataclasses
import difflib
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
        if check is not None:
            check(obj)
    except ConfigError:
        raise
    except (TypeError, ValueError, ManifestError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return obj
