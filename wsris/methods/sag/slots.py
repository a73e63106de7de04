"""Shatter and Gather inference on tensors: combining ``A^slot`` with ``A^fuse``.

Shapes: ``a_slot`` is ``[K, h, w]`` (or ``[K, N]``; any trailing spatial shape), one map
per slot, softmax over the slots at each pixel (so the maps sum to 1 over ``K``);
``a_fuse`` is ``[K]`` for one text or ``[T, K]`` for ``T`` texts, softmax over the slots.

Combination schemes (paper Sec. 3.5 and Table 4b):

* ``product`` (the paper's method): ``map = sum_k A^fuse[k] * A^slot[k]``, the matrix
  product ``A^slot . A^fuse``;
* ``max``: the single slot map with the largest ``A^fuse``;
* ``min``: the single slot map with the SMALLEST ``A^fuse``. The paper describes MIN as
  "picks the attention map with the minimum probability", the mirror of MAX, and reports
  near-zero IoU for it: a sanity check that ``A^fuse`` ranks the slots, not a method. (The
  official evaluation code does the same: ``argmin`` over ``A^fuse``.)
* ``avg``: ``A^fuse`` replaced by the uniform distribution, ``map = mean_k A^slot[k]``.
  Because ``A^slot`` sums to 1 over the slots at every pixel, this map is the constant
  ``1/K`` up to rounding, and after min-max normalisation it carries no localisation: the
  paper's AVG numbers (about 8 mIoU) are what thresholding such a map gives.

Ties in ``max``/``min`` go to the lowest slot index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...blocks.maps import upsample_normalised

COMBINE_MODES = ("product", "max", "avg", "min")


def combine_slot_maps(
    a_slot: torch.Tensor, a_fuse: torch.Tensor, mode: str = "product"
) -> torch.Tensor:
    """Localisation map(s) from ``a_slot`` ``[K, *S]`` and ``a_fuse`` ``[K]`` or ``[T, K]``.

    Returns ``[*S]`` for a 1-D ``a_fuse`` and ``[T, *S]`` for a 2-D one, in float32.
    """
    if mode not in COMBINE_MODES:
        raise ValueError(f"combine must be one of {COMBINE_MODES}, got {mode!r}")
    single = a_fuse.dim() == 1
    fuse = a_fuse.float().reshape(-1, a_fuse.shape[-1])  # [T, K]
    k = a_slot.shape[0]
    if fuse.shape[-1] != k:
        raise ValueError(f"a_fuse has {fuse.shape[-1]} slots, a_slot has {k}")
    spatial = a_slot.shape[1:]
    slots = a_slot.float().reshape(k, -1)  # [K, N]
    if mode == "product":
        out = fuse @ slots
    elif mode == "avg":
        out = slots.mean(dim=0, keepdim=True).expand(fuse.shape[0], -1)
    else:
        # argmax/argmin return the first index among ties
        idx = fuse.argmax(dim=-1) if mode == "max" else fuse.argmin(dim=-1)
        out = slots[idx]
    out = out.reshape(fuse.shape[0], *spatial)
    return out[0] if single else out


@dataclass
class Entity:
    """One discovered entity and its relevance to a text (paper Figure 5)."""

    index: int  # slot index k
    relevance: float  # A^fuse[k]
    map: torch.Tensor  # A^slot[k], [h, w] float32


def top_entities(a_slot: torch.Tensor, a_fuse: torch.Tensor, k: int = 3) -> list[Entity]:
    """The ``k`` slots most relevant to one text (``a_fuse`` ``[K]``), most relevant first,
    each with its ``A^slot`` map. Used for the paper's Figure 5 view (top-3 entities)."""
    if a_fuse.dim() != 1:
        raise ValueError("top_entities takes the A^fuse of one text, shape [K]")
    k = min(k, a_fuse.shape[0])
    values, idx = a_fuse.float().topk(k)
    return [
        Entity(int(i), float(v), a_slot[int(i)].float().cpu())
        for v, i in zip(values.tolist(), idx.tolist(), strict=True)
    ]


def slot_masks(a_slot: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Hard slot assignment: ``[K, H, W]`` bool, each pixel to its arg-max slot.

    ``a_slot`` ``[K, h, w]`` is first resized bilinearly to ``size`` when given.
    """
    maps = a_slot.float()
    if size is not None and tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]
    winner = maps.argmax(dim=0)
    return winner[None] == torch.arange(maps.shape[0], device=maps.device)[:, None, None]


def best_slot_iou(a_slot: torch.Tensor, object_masks: torch.Tensor) -> torch.Tensor:
    """Binding quality: for each ground-truth object, the best IoU of any hard slot mask.

    ``a_slot`` ``[K, h, w]``; ``object_masks`` ``[M, H, W]`` bool. Returns ``[M]`` float32
    (IoU 0 for an empty object mask whose slots are all empty too).
    """
    objects = object_masks.bool()
    slots = slot_masks(a_slot, tuple(objects.shape[-2:]))  # [K, H, W]
    s = slots.flatten(1).float()
    o = objects.flatten(1).float().to(s.device)
    inter = o @ s.T  # [M, K]
    union = o.sum(1, keepdim=True) + s.sum(1)[None] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    return iou.max(dim=1).values


def _heat_colors(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 on a blue-cyan-yellow-red ramp (no plotting library needed)."""
    stops = np.array([[0, 0, 128], [0, 160, 255], [255, 230, 0], [220, 20, 0]], dtype=np.float32)
    pos = np.clip(x, 0.0, 1.0) * (len(stops) - 1)
    lo = np.minimum(pos.astype(int), len(stops) - 2)
    frac = (pos - lo)[..., None]
    return (stops[lo] * (1 - frac) + stops[lo + 1] * frac).astype(np.uint8)


def top_entities_figure(
    image: np.ndarray,
    a_slot: torch.Tensor,
    a_fuse: torch.Tensor,
    k: int = 3,
    alpha: float = 0.6,
) -> tuple[np.ndarray, list[Entity]]:
    """Paper Figure 5 as one RGB strip: the image, then the ``k`` most relevant entities'
    ``A^slot`` maps (bilinearly resized, min-max normalised) blended over it.

    ``image`` is ``H x W x 3`` uint8; returns the ``H x (k+1)W x 3`` uint8 strip and the
    entities (index and ``A^fuse`` relevance, for captions).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be an H x W x 3 array")
    h, w = image.shape[:2]
    entities = top_entities(a_slot, a_fuse, k)
    panels = [image.astype(np.uint8)]
    for e in entities:
        m = upsample_normalised(e.map, (h, w)).numpy()
        blend = (1 - alpha) * image.astype(np.float32) + alpha * _heat_colors(m)
        panels.append(np.clip(blend, 0, 255).astype(np.uint8))
    return np.concatenate(panels, axis=1), entities
