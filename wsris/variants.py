"""Deprecated: ``METHOD_VARIANTS`` is read from the method registry (each
:class:`~wsris.methods.MethodSpec` lists its ``variants``). Removed in wsris 0.2."""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "METHOD_VARIANTS":
        from .methods import get_method, method_names

        warnings.warn("wsris.variants.METHOD_VARIANTS: use wsris.methods.get_method(m).variants",
                      DeprecationWarning, stacklevel=2)
        return {m: dict(get_method(m).variants) for m in method_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
