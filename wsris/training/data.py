"""Training batches: image-text pairs from a data spec, preprocessed and tokenized.

Only images and expressions are used for the weakly supervised losses; target masks are
carried along for the optional box / semi supervision of the chunk method and for
monitoring, never for the weak losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..images import pad_to_square, resize_mode, to_model_input
from ..text import TextBatch, Tokenizer


def referring_dataset(spec: str):
    """The dataset of a recipe's data spec: one grammar with ``wsris eval --data``
    (:mod:`wsris.data.spec`), e.g. ``shapes:train?variant=attributes&length=5000``,
    ``cache:DIR`` or ``refcoco+:unc:train@/path/to/refer``."""
    from ..data.spec import open_dataset

    return open_dataset(spec)


@dataclass
class PairBatch:
    pixel_values: torch.Tensor  # [B_img, 3, H, W], one per distinct image
    text: TextBatch  # [B_txt, L]
    image_index: torch.Tensor  # [B_txt]: which row of pixel_values each text describes
    masks: torch.Tensor  # [B_txt, H, W] bool target masks at the model's input size
    kinds: list[str | None]
    sample_ids: list[str]
    image_ids: list[Any]  # the dataset's image id of each row of pixel_values
    # the frozen image stem's output for each row, when read from a stored cache
    # (wsris.training.stem_cache); the model then starts from these instead of pixels
    stem_features: torch.Tensor | None = None

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(
            self.pixel_values.to(device),
            self.text.to(device),
            self.image_index.to(device),
            self.masks.to(device),
            self.kinds,
            self.sample_ids,
            self.image_ids,
            None if self.stem_features is None else self.stem_features.to(device),
        )


def _pad_widths(shape: tuple[int, ...], offset: tuple[int, int]) -> list[tuple[int, int]]:
    """np.pad widths that put an ``shape`` array at ``offset`` in its padded square."""
    side = max(shape)
    (top, left), (h, w) = offset, shape
    return [(top, side - h - top), (left, side - w - left)]


class PairCollator:
    """Groups the texts of one image onto one image row (so contrastive losses never
    treat an image's own second expression as a negative)."""

    def __init__(self, tokenizer: Tokenizer, preprocessing: dict[str, Any]) -> None:
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing

    def __call__(self, samples: list) -> PairBatch:
        height, width = self.preprocessing["size"]
        rows: dict[Any, int] = {}
        pixels, index, masks = [], [], []
        for s in samples:
            if s.image_id not in rows:
                rows[s.image_id] = len(pixels)
                pixels.append(to_model_input(s.image, self.preprocessing))
            index.append(rows[s.image_id])
            mask = s.mask.astype(np.uint8) * 255
            if resize_mode(self.preprocessing) == "pad":  # as the image: zeros, not edges
                mask = np.pad(mask, _pad_widths(mask.shape, pad_to_square(mask)[1]))
            m = Image.fromarray(mask).resize((width, height))
            masks.append(torch.from_numpy(np.asarray(m) > 127))
        return PairBatch(
            torch.stack(pixels),
            self.tokenizer([s.text for s in samples]),
            torch.tensor(index, dtype=torch.long),
            torch.stack(masks),
            [s.kind for s in samples],
            [str(s.sample_id) for s in samples],
            list(rows),
        )
