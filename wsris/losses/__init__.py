"""Deprecated: the training losses live with their methods (``wsris.methods.sag.losses``,
``wsris.methods.chunk.losses``); ``wsris.methods.sag.losses`` and ``wsris.methods.chunk.losses`` are
aliases for one release (removed in wsris 0.2)."""

from __future__ import annotations

from typing import Any

__all__ = ["c3_logits", "c3_loss", "c3_retrieval_accuracy", "reconstruction_loss"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import sag

        return getattr(sag, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
