"""wsris: weakly supervised referring image segmentation.

>>> import wsris
>>> seg = wsris.load("albef-chunk-shapes")
>>> result = seg.segment("image.png", "the small red circle")
>>> result.mask  # bool array at the original image size

The public names are imported lazily, so ``import wsris`` (and ``wsris --help``) does not
load torch until a model is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "Segmenter": ".api",
    "EncodedImage": ".api",
    "load": ".api",
    "SegmentationResult": ".result",
    "WsrisError": ".errors",
    "list_models": ".registry",
}

__all__ = [*_EXPORTS, "segment"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'wsris' has no attribute {name!r}")


def segment(image: Any, text: str | list[str], model: str = "albef-chunk-shapes", **kwargs: Any):
    """One-shot helper: ``wsris.load(model).segment(image, text, **kwargs)``."""
    from .api import load

    return load(model).segment(image, text, **kwargs)
