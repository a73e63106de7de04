"""wsris: weakly supervised referring image segmentation.

>>> import wsris
>>> seg = wsris.load("albef-chunk-shapes")
>>> result = seg.segment("image.png", "the small red circle")
>>> result.mask  # bool array at the original image size
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from .api import Segmenter, load  # noqa: E402
from .errors import WsrisError  # noqa: E402
from .registry import list_models  # noqa: E402
from .result import SegmentationResult  # noqa: E402

__all__ = ["Segmenter", "SegmentationResult", "WsrisError", "list_models", "load", "segment"]


def segment(image, text, model: str = "albef-chunk-shapes", **kwargs):
    """One-shot helper: ``wsris.load(model).segment(image, text, **kwargs)``."""
    return load(model).segment(image, text, **kwargs)
