"""Where the time goes: per-stage breakdown of one ``segment`` call, and PyTorch's
operator profile (``torch.profiler``).

The breakdown calls the same functions as the pipelines, stage by stage, with a clock
around each (median over ``reps`` runs); it is a profile, not a second implementation:
its total is printed next to the measured ``segment`` time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from .common import rounded, sync
from .models import BenchModel


class _Clock:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.laps: dict[str, float] = {}
        sync(device)
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now


def _chunk_once(bm: BenchModel, count: int) -> dict[str, float]:
    from wsris.images import load_image
    from wsris.methods.chunk.affinity import patch_affinity, refine_with_affinity
    from wsris.methods.chunk.gradcam import compute_gradcam, default_word_mask, sentence_map
    from wsris.methods.chunk.pipeline import _normalised, proposal_image
    from wsris.methods.chunk.proposals import generate_proposals, select_proposal

    seg = bm.segmenter
    model = seg.model
    opts = seg.config["inference"]
    layer = opts.get("gradcam_layer", model.config.default_gradcam_layer)
    aff_layer = opts.get("affinity_layer", model.config.default_affinity_layer)
    clock = _Clock(seg.device)
    rgb = load_image(bm.image, seg.max_pixels)
    pixels = seg.preprocess(rgb)
    batch = seg.tokenizer(bm.texts[:count]).to(seg.device)
    clock.lap("preprocess + tokenize")
    with torch.no_grad():
        vision = model.encode_image(pixels, aff_layer)
    clock.lap("image encoder (+ affinity attention)")
    with torch.no_grad():
        text_hidden = model.encode_text(batch.input_ids, batch.attention_mask)
    clock.lap("text encoder")
    cam = compute_gradcam(model, vision.tokens, batch.input_ids, batch.attention_mask, layer,
                          text_hidden=text_hidden)
    clock.lap("fusion + Grad-CAM backward")
    maps = cam.maps.cpu()
    averaged = sentence_map(maps, default_word_mask(batch.attention_mask).cpu())
    assert vision.attention is not None
    refined = refine_with_affinity(averaged, patch_affinity(vision.attention.cpu()))
    clock.lap("word average + affinity")
    work = proposal_image(rgb)
    proposals = generate_proposals(work, opts.get("max_proposals") or 200)
    clock.lap("proposals")
    for t in range(refined.shape[0]):
        select_proposal(proposals, _normalised(refined[t], work.shape[:2]), 0.3)
    clock.lap("proposal selection")
    h, w = rgb.shape[:2]
    for t in range(refined.shape[0]):
        torch.nn.functional.interpolate(refined[t][None, None], size=(h, w), mode="bilinear")
    clock.lap("resize to image")
    return clock.laps


def _sag_once(bm: BenchModel, count: int) -> dict[str, float]:
    from wsris.images import load_image
    from wsris.methods.sag.slots import combine_slot_maps

    seg = bm.segmenter
    model = seg.model
    opts = seg.config["inference"]
    init = opts.get("slot_init", "mean")
    clock = _Clock(seg.device)
    rgb = load_image(bm.image, seg.max_pixels)
    pixels = seg.preprocess(rgb)
    batch = seg.tokenizer(bm.texts[:count]).to(seg.device)
    clock.lap("preprocess + tokenize")
    with torch.no_grad():
        image = model.encode_image(pixels)
        clock.lap("image encoder (ViT)")
        gen = torch.Generator().manual_seed(int(opts.get("seed") or 0))
        slots = model.discover(image, init, gen if init == "sample" else None)
        clock.lap("slot discovery")
        text = model.encode_text(batch.input_ids, batch.attention_mask)
        clock.lap("text encoder")
        fused = model.fuse(slots.slots, text)
        h, w = slots.grid
        combine_slot_maps(slots.a_slot[0].float().reshape(-1, h, w).cpu(),
                          fused.a_fuse[0].float().cpu())
        clock.lap("fusion + map")
    return clock.laps


def breakdown(bm: BenchModel, count: int, reps: int = 3) -> dict[str, Any]:
    """Median seconds of each stage of one call with ``count`` expressions, and the share
    of each stage in their total."""
    once: Callable[[BenchModel, int], dict[str, float]] = (
        _chunk_once if bm.method == "chunk" else _sag_once
    )
    from wsris.device import autocast

    with autocast(bm.segmenter.device, bm.segmenter.dtype):  # as Segmenter.segment does
        once(bm, count)  # warm-up
        runs = [once(bm, count) for _ in range(reps)]
    stages = {k: float(statistics.median(r[k] for r in runs)) for k in runs[0]}
    total = sum(stages.values())
    return {
        "count": count,
        "seconds": {k: rounded(v) for k, v in stages.items()},
        "share": {k: rounded(v / total, 3) for k, v in stages.items()},
        "total_seconds": rounded(total),
    }


def top_operators(fn: Callable[[], Any], rows: int = 12) -> list[dict[str, Any]]:
    """The operators with the most self CPU time in one call of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "self_cpu_ms": rounded(e.self_cpu_time_total / 1e3),
            "share": rounded(e.self_cpu_time_total / total, 3),
            "calls": e.count,
        }
        for e in events[:rows]
    ]
