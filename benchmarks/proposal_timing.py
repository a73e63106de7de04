"""Mask proposals as the chunk pipeline uses them: seconds per image, count, ABO.

* seconds per image (median after a warm-up) of ``generate_proposals`` at 384x384 and
  640x480 (Shapes-Ref val scenes rendered at 384 px, the 640x480 ones resized), with the
  pipeline's ``max_proposals`` (200);
* ABO (average best overlap: for every object of a scene, the best IoU of any proposal,
  averaged over objects) on Shapes-Ref val at 128 px (the bundled model's input) and at
  384 px (what the paper-size pipeline gives the proposals).

``benchmarks/proposals.py`` (its own command) measures proposal quality in more depth.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from .common import rounded

SIZES = ((384, 384), (640, 480))


def _scenes(count: int, image_size: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    from wsris.data.shapes import ShapesRef

    ds = ShapesRef("val", image_size=image_size)
    return [(s.image, [o.mask for o in s.objects]) for s in (ds[i] for i in range(count))]


def average_best_overlap(
    scenes: list[tuple[np.ndarray, list[np.ndarray]]], max_proposals: int = 200
) -> dict[str, Any]:
    """ABO, recall at IoU 0.5/0.7 and the proposal count over ``scenes``."""
    from wsris.methods.chunk.proposals import generate_proposals, proposal_ious

    best: list[float] = []
    counts: list[int] = []
    for image, masks in scenes:
        props = generate_proposals(image, max_proposals)
        counts.append(len(props))
        best.extend(float(proposal_ious(props, m).max(initial=0.0)) for m in masks)
    arr = np.asarray(best)
    return {
        "abo": rounded(float(arr.mean())),
        "recall_at_0.5": rounded(float((arr >= 0.5).mean())),
        "recall_at_0.7": rounded(float((arr >= 0.7).mean())),
        "scenes": len(scenes),
        "objects": len(best),
        "proposals_mean": rounded(float(np.mean(counts))),
        "proposals_min": int(np.min(counts)),
    }


def seconds_per_image(images: list[np.ndarray], runs: int, max_proposals: int) -> dict[str, Any]:
    """Median seconds of ``generate_proposals`` per image (one warm-up call first)."""
    from wsris.methods.chunk.proposals import generate_proposals

    generate_proposals(images[0], max_proposals)
    times: list[float] = []
    counts: list[int] = []
    for _ in range(runs):
        for image in images:
            t0 = time.perf_counter()
            props = generate_proposals(image, max_proposals)
            times.append(time.perf_counter() - t0)
            counts.append(len(props))
    return {
        "seconds_per_image": rounded(float(statistics.median(times))),
        "runs": len(times),
        "proposals_mean": rounded(float(np.mean(counts))),
    }


def bench_proposals(
    images: int = 4, runs: int = 3, abo_scenes: int = 50, max_proposals: int = 200
) -> dict[str, Any]:
    """Timing at 384x384 and 640x480, and ABO at 128 and 384 px."""
    import cv2

    base = [image for image, _ in _scenes(images, 384)]
    timing = {}
    for w, h in SIZES:
        batch = [cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in base]
        timing[f"{w}x{h}"] = seconds_per_image(batch, runs, max_proposals)
    quality = {
        "128px": average_best_overlap(_scenes(abo_scenes, 128), max_proposals),
        "384px": average_best_overlap(_scenes(max(1, abo_scenes // 3), 384), max_proposals),
    }
    return {
        "max_proposals": max_proposals,
        "timing_images": f"Shapes-Ref val scenes 0..{images - 1}",
        "timing": timing,
        "abo_data": "Shapes-Ref val",
        "abo": quality,
    }
