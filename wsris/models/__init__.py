"""The networks: plain ``nn.Module``s with no files, pipelines or image handling.

``albef`` (ALBEF: ViT + BERT with cross-attention fusion), ``sag`` (Shatter and Gather),
``bert`` (the text encoder both use) and ``layers`` (shared image stems). Which method
builds which model is recorded in the method registry, :mod:`wsris.methods`.
"""

from __future__ import annotations

import warnings
from typing import Any


def build_model(method: str, architecture: dict[str, Any]) -> Any:
    """Deprecated: use :func:`wsris.methods.build_model` (removed in wsris 0.2)."""
    from ..methods import build_model as build

    warnings.warn("wsris.models.build_model moved to wsris.methods.build_model",
                  DeprecationWarning, stacklevel=2)
    return build(method, architecture)


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # deprecated: the registered methods
        from ..methods import method_names

        return method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
