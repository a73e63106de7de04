"""The inference-pipeline contract between ``api.Segmenter`` and the methods.

Each method names one pipeline module in its :class:`~wsris.registry.MethodSpec` (e.g.
``wsris.methods.chunk.pipeline``) with ``localize`` and ``encode`` functions of the
signatures given by :class:`Localize` and :class:`Encode`. ``api.Segmenter`` owns files,
devices, preprocessing and resizing; a pipeline only turns tensors into maps.
"""

from __future__ import annotations

from .base import Encode, LocalizationOutput, Localize, TextBatch

__all__ = ["Encode", "Localize", "LocalizationOutput", "TextBatch"]
