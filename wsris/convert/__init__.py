"""Deprecated: converters live with their methods (``wsris.methods.chunk.convert``,
``wsris.methods.sag.convert``) and are found through :func:`wsris.methods.run_converter`.
This package and its modules are aliases for one release (removed in wsris 0.2)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

__all__ = ["convert_albef", "convert_checkpoint"]


def convert_checkpoint(converter: str, src: Path, out_dir: Path) -> Path:
    """Deprecated: :func:`wsris.methods.run_converter`."""
    from ..methods import run_converter

    warnings.warn("wsris.convert.convert_checkpoint moved to wsris.methods.run_converter",
                  DeprecationWarning, stacklevel=2)
    return run_converter(converter, src, out_dir)


def __getattr__(name: str) -> Any:
    if name == "convert_albef":
        from .albef import convert_albef

        return convert_albef
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
