"""Referring-segmentation metrics and the trivial baselines (see :mod:`wsris.evaluation`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.base import RefSample
from ..errors import InvalidInputError

THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
BASELINES: tuple[str, ...] = ("random_object", "all_objects", "centre_box")
BASELINE_LABELS = {"model": "model", "random_object": "random object",
                   "all_objects": "all objects", "centre_box": "centred box"}

@dataclass(frozen=True)
class MaskStats:
    """Pixel counts of one prediction against its ground truth."""

    intersection: int
    union: int
    pred_area: int
    gt_area: int

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union > 0 else 0.0

    @property
    def precision(self) -> float:
        return self.intersection / self.pred_area if self.intersection > 0 else 0.0

    @property
    def recall(self) -> float:
        return self.intersection / self.gt_area if self.gt_area > 0 else 0.0


def mask_stats(pred: np.ndarray, gt: np.ndarray) -> MaskStats:
    """Counts for a predicted and a ground-truth mask of the same HxW shape."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise InvalidInputError(
            f"prediction of shape {pred.shape} for a ground truth of shape {gt.shape}: "
            "masks must be at the original image size"
        )
    p = pred.astype(bool, copy=False)
    g = gt.astype(bool, copy=False)
    inter = int(np.count_nonzero(p & g))
    pa, ga = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    return MaskStats(inter, pa + ga - inter, pa, ga)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two masks, 0 when both are empty."""
    return mask_stats(pred, gt).iou


def summarize(stats: Sequence[MaskStats]) -> dict[str, float]:
    """mIoU, cIoU, Pr@X, mean precision and recall of a list of samples (fractions)."""
    n = len(stats)
    out: dict[str, float] = {"n": n}
    if n == 0:
        out.update({"mIoU": 0.0, "cIoU": 0.0, **{f"Pr@{t}": 0.0 for t in THRESHOLDS},
                    "precision": 0.0, "recall": 0.0})
        return out
    ious = np.array([s.iou for s in stats], dtype=np.float64)
    total_i = sum(s.intersection for s in stats)
    total_u = sum(s.union for s in stats)
    out["mIoU"] = float(ious.mean())
    out["cIoU"] = total_i / total_u if total_u > 0 else 0.0
    for t in THRESHOLDS:
        out[f"Pr@{t}"] = float((ious >= t).mean())
    out["precision"] = float(np.mean([s.precision for s in stats]))
    out["recall"] = float(np.mean([s.recall for s in stats]))
    return out


# --------------------------------------------------------------------------------------
# Pointing: where the map peaks (TRIS's PointM and PointB; "HitM" and "Hit" in its code)


@dataclass(frozen=True)
class PointingHit:
    """Whether a map's peak falls inside the target mask and inside the target's box."""

    in_mask: bool
    in_box: bool


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    """``(row, column)`` of the map's maximum; the first in row-major order on ties, as
    ``np.argmax`` (and TRIS's validation) picks it."""
    heatmap = np.asarray(heatmap)
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(row), int(col)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box ``(x0, y0, x1, y1)`` around a mask, inclusive pixel bounds; None for
    an empty mask. REFER's boxes are the COCO annotation boxes of the same polygons, so
    this is the target's box to within the rasterisation of its outline."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def pointing(heatmap: np.ndarray, gt: np.ndarray) -> PointingHit:
    """The pointing test of one map (any real-valued map at the image size) against the
    target mask: PointM = its peak pixel is a target pixel, PointB = its peak lies in the
    target's box (bounds included, as TRIS tests ``x0 <= x <= x1``)."""
    heatmap, gt = np.asarray(heatmap), np.asarray(gt, dtype=bool)
    if heatmap.shape != gt.shape:
        raise InvalidInputError(
            f"heat map of shape {heatmap.shape} for a ground truth of shape {gt.shape}: "
            "maps must be at the original image size")
    row, col = peak(heatmap)
    box = mask_box(gt)
    in_box = box is not None and box[0] <= col <= box[2] and box[1] <= row <= box[3]
    return PointingHit(bool(gt[row, col]), bool(in_box))


def summarize_pointing(hits: Sequence[PointingHit]) -> dict[str, float]:
    """PointM and PointB: the share of samples whose map peaks in the mask / in the box."""
    if not hits:
        return {"PointM": 0.0, "PointB": 0.0}
    return {"PointM": float(np.mean([h.in_mask for h in hits])),
            "PointB": float(np.mean([h.in_box for h in hits]))}


# --------------------------------------------------------------------------------------
# Baselines and variants


def centre_box(height: int, width: int, fraction: float = 0.5) -> np.ndarray:
    """A centred box covering ``fraction`` of the height and of the width."""
    mask = np.zeros((height, width), dtype=bool)
    bh, bw = round(height * fraction), round(width * fraction)
    top, left = (height - bh) // 2, (width - bw) // 2
    mask[top:top + bh, left:left + bw] = True
    return mask


def baseline_masks(sample: RefSample, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The three trivial predictions for ``sample``."""
    h, w = sample.mask.shape
    objs = sample.object_masks
    if objs:
        rand = objs[int(rng.integers(len(objs)))]
        union = np.logical_or.reduce(np.stack(objs), axis=0)
    else:
        rand = union = np.zeros((h, w), dtype=bool)
    return {"random_object": rand, "all_objects": union, "centre_box": centre_box(h, w)}
