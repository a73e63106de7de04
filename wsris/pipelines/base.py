"""The contract between ``api.Segmenter`` and the method pipelines (``MethodSpec.pipeline``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..text import TextBatch  # noqa: F401  (part of the contract; defined with the tokenizer)


@dataclass
class LocalizationOutput:
    """What a pipeline returns for one text.

    ``heatmap`` is the method's final localisation map at the model's token grid (or any
    low resolution), not yet normalised; the Segmenter resizes it bilinearly to the
    original image size and min-max normalises it. ``mask``, when a method produces its
    own binary mask (e.g. a selected proposal), is a bool array at any resolution that
    the Segmenter resizes (nearest) to the original size; otherwise the mask is the
    normalised heatmap thresholded. ``stages`` keeps every intermediate for inspection.
    """

    heatmap: torch.Tensor  # [h, w] float32 on CPU
    mask: np.ndarray | None = None
    score: float | None = None
    stages: dict[str, Any] = field(default_factory=dict)


class Localize(Protocol):
    def __call__(
        self,
        model: torch.nn.Module,
        pixel_values: torch.Tensor,  # [1, 3, H, W] normalised, on the model's device
        text: TextBatch,  # on the model's device
        image: np.ndarray,  # the original RGB image, HxWx3 uint8 (for proposals)
        options: dict[str, Any],  # method options from the model config's "inference"
        cache: dict[Any, Any] | None = None,  # image-side results kept across calls
    ) -> list[LocalizationOutput]: ...


class Encode(Protocol):
    """Computes a pipeline's image side for ``options`` into ``cache`` ahead of texts."""

    def __call__(
        self,
        model: torch.nn.Module,
        pixel_values: torch.Tensor,
        image: np.ndarray,
        options: dict[str, Any],
        cache: dict[Any, Any],
    ) -> None: ...
