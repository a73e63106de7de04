"""Training for both methods: ``wsris train CONFIG.yaml`` or :func:`train`."""

from __future__ import annotations

from .config import TrainConfig
from .loop import export_checkpoint, train, validate_checkpoint

__all__ = ["TrainConfig", "export_checkpoint", "train", "validate_checkpoint"]
