"""Training losses, one module per method (``sag``: C^3 and reconstruction)."""

from __future__ import annotations

from .sag import c3_logits, c3_loss, c3_retrieval_accuracy, reconstruction_loss

__all__ = ["c3_logits", "c3_loss", "c3_retrieval_accuracy", "reconstruction_loss"]
