"""TRIS's input and output conventions (``dataset/transform.py``, ``validate.py``).

Input: the image as RGB (``Image.open(...).convert("RGB")``), resized to 320 x 320
without keeping the aspect ratio (torchvision's PIL bilinear resize, which is what
``wsris.images.to_model_input`` does), scaled to [0, 1] and normalised with ImageNet's
mean and std (not CLIP's). Text: CLIP BPE ids cut to 20 (:mod:`.tokenizer`).

Output (:func:`official_mask`): the map resized to the original image size (bilinear,
``align_corners=True``), divided by its maximum plus 1e-5, and every value above 1e-9
is the mask. For stage 1 (a ReLU map) that is every pixel with a positive score; for
stage 2 (logits) every pixel with a positive logit, except that a map whose maximum is
negative divides by a negative number and selects every pixel with a negative logit,
the whole image when all are. This rule is kept as it is: it is how the published
figures were measured.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .model import TrisConfig

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
MAX_EPS = 1e-5
MASK_EPS = 1e-9
MASK_RULES = ("official", "threshold")


CARD_RECIPE = (
    "Trained by TRIS's authors (stage {stage}); released as a GitHub asset of "
    "fawnliu/storage and converted by `wsris convert tris` (config.json `source` holds the "
    "file's sha256; no checksum is published upstream)."
)
CARD_CHECKED = (
    "Research use; weakly supervised masks are coarse. What was checked without these "
    "weights: the official layout of every tensor (key and shape) fills this model exactly, "
    "and at identical random weights the maps and masks equal those of the official code "
    "(on the CPU, during development) and of a reference written from its definitions (in "
    "the tests). Not checked: the released file itself and the paper's figures; run "
    "`wsris eval` on REFER data to compare. See docs/tris.md for the departures and quirks."
)


def to_original_size(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[T, 1, h, w]`` -> ``[T, H, W]``, bilinear with ``align_corners=True`` as TRIS."""
    return F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=True)[:, 0]


def official_mask(pred: torch.Tensor) -> torch.Tensor:
    """TRIS's mask of one map at the original size ``[H, W]`` (see the module docstring)."""
    return (pred / (pred.max() + MAX_EPS)) > MASK_EPS


def model_config(config: TrisConfig, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` of a TRIS model folder."""
    return {
        "method": "tris",
        "architecture": config.to_dict(),
        "preprocessing": {"size": [config.image_size, config.image_size],
                          "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                          "interpolation": "bilinear"},
        "text": {"style": "clip", "max_length": config.text_length},
        # threshold: used only with mask_rule "threshold" (on the min-max normalised map)
        "inference": {"threshold": 0.5, "mask_rule": "official"},
        "card": {"recipe": CARD_RECIPE.format(stage=config.stage), "limits": CARD_CHECKED},
        "source": source or {},
    }
