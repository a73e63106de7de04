"""Referring-segmentation metrics, trivial baselines and the (torchrun-shardable) loop.

Metrics, all computed at the ORIGINAL image resolution from each sample's intersection I,
union U, predicted area P and ground-truth area G:

* IoU = I / U per sample, 0 when U = 0 (both masks empty); mIoU = mean IoU;
* cIoU (= oIoU) = sum I / sum U over all samples;
* Pr@X = share of samples with IoU >= X, for X in 0.3, 0.5, 0.7, 0.9;
* precision = mean of I / P (0 when I = 0) and recall = mean of I / G (0 when G = 0),
  as Shatter and Gather's evaluation code reports them.

Trivial baselines, computed on the same samples: ``random_object`` (the true mask of one
of the image's annotated objects, drawn with a per-sample seed), ``all_objects`` (the
union of all annotated objects) and ``centre_box`` (a box of half the image's width and
height in its centre). A model below them has not learnt to pick the referred object.

Sharding: ``torchrun --nproc_per_node N -m wsris.cli eval --model M --data D`` runs the
same command in N processes (gloo on CPU, NCCL on GPUs); images are dealt out round-robin,
every model call is seeded from (seed, image group) only, and the per-sample counts are
gathered and summed in sample order, so the figures equal the single-process run exactly.
"""

from __future__ import annotations

from .loop import ON_ERROR, evaluate, load_dataset, run, variant_options
from .metrics import (
    BASELINES,
    THRESHOLDS,
    MaskStats,
    baseline_masks,
    centre_box,
    iou,
    mask_stats,
    summarize,
)
from .report import BASELINE_LABELS, EvalReport, sample_ref

__all__ = [
    "THRESHOLDS",
    "BASELINES",
    "BASELINE_LABELS",
    "ON_ERROR",
    "MaskStats",
    "EvalReport",
    "mask_stats",
    "summarize",
    "iou",
    "centre_box",
    "baseline_masks",
    "variant_options",
    "load_dataset",
    "evaluate",
    "run",
    "sample_ref",
]

