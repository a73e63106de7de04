"""Foreign checkpoints -> wsris model folders (``config.json`` + ``model.safetensors``)."""

from __future__ import annotations

from .albef import convert_albef

__all__ = ["convert_albef"]
