"""TRIS inference: the image encoded once, each text's map, TRIS's own mask rule.

The Segmenter resizes a pipeline's heat map bilinearly and min-max normalises it; TRIS
resizes with ``align_corners=True``, so the map is returned at the original size
already (the Segmenter's resize is then the identity) and its mask made here.

Options (``config.json`` "inference", overridable per call):

* ``mask_rule``: ``official`` (TRIS's ``validate.py``, see :mod:`.preprocessing`) or
  ``threshold`` (the Segmenter's rule: the min-max normalised map at ``threshold``).

Stages kept on each output: ``map`` ``[h, w]`` (the network's output at the input size:
stage 1 ReLU scores, stage 2 logits), ``stage``, ``mask_rule``. ``score`` is the map's
maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...pipelines.base import LocalizationOutput
from ...text import TextBatch
from .model import TrisModel
from .preprocessing import MASK_RULES, official_mask, to_original_size

DEFAULT_OPTIONS: dict[str, Any] = {"mask_rule": "official"}
CACHE_KEY = "tris_image"


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    if opts["mask_rule"] not in MASK_RULES:
        raise InvalidInputError(
            f"mask_rule must be one of {MASK_RULES}, got {opts['mask_rule']!r}")
    return opts


def _image_side(model: torch.nn.Module, pixel_values: torch.Tensor,
                cache: dict[Any, Any] | None) -> tuple[torch.Tensor, ...]:
    if not isinstance(model, TrisModel):
        raise TypeError(f"the tris pipeline needs a TrisModel, got {type(model).__name__}")
    if pixel_values.shape[0] != 1:
        raise InvalidInputError("localize takes one image at a time")
    if cache is not None and CACHE_KEY in cache:
        return cache[CACHE_KEY]
    feats = model.encode_image(pixel_values)
    if cache is not None:
        cache[CACHE_KEY] = feats
    return feats


@torch.no_grad()
def encode(model: torch.nn.Module, pixel_values: torch.Tensor, image: np.ndarray,
           options: dict[str, Any], cache: dict[Any, Any]) -> None:
    """Run the image encoder into ``cache`` for every later text on the same image."""
    _options(options)
    _image_side(model, pixel_values, cache)


@torch.no_grad()
def localize(model: torch.nn.Module, pixel_values: torch.Tensor, text: TextBatch,
             image: np.ndarray, options: dict[str, Any],
             cache: dict[Any, Any] | None = None) -> list[LocalizationOutput]:
    """One output per text of ``text`` for the single image ``pixel_values``."""
    opts = _options(options)
    feats = _image_side(model, pixel_values, cache)
    assert isinstance(model, TrisModel)
    maps = model.localize(feats, text.input_ids, tuple(pixel_values.shape[2:])).float()
    full = to_original_size(maps, image.shape[:2]).cpu()  # [T, H, W]
    outputs = []
    for t in range(full.shape[0]):
        mask = official_mask(full[t]).numpy() if opts["mask_rule"] == "official" else None
        stages = {"map": maps[t, 0].cpu(), "stage": model.config.stage,
                  "mask_rule": opts["mask_rule"]}
        outputs.append(LocalizationOutput(heatmap=full[t], mask=mask,
                                          score=float(full[t].max()), stages=stages))
    return outputs
