"""Method pipelines: model forward (and backward, for Grad-CAM) to low-resolution maps.

Each method has one module here with a ``localize`` function of the signature given by
:class:`Localize`. ``api.Segmenter`` owns files, devices, preprocessing and resizing;
a pipeline only turns tensors into maps.
"""

from __future__ import annotations

from .base import LocalizationOutput, Localize, TextBatch

__all__ = ["Localize", "LocalizationOutput", "TextBatch"]
