"""Chunk and SaG inference: wsris against the upstream way, and chunk's stages.

For 1, 4 and 16 expressions on one image, ``Segmenter.segment(image, texts)`` (wsris:
image side once, all texts in one batch, chunk's backward only into the Grad-CAM
attention map) is timed interleaved with the same call on a Segmenter whose per-method
work is the upstream way (:mod:`benchmarks.upstream`). Before timing, both ways' maps
are compared number for number on all 16 expressions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .common import interleaved, measure_peak_mb, rounded
from .models import BenchModel
from .upstream import as_upstream

COUNTS = (1, 4, 16)
# Options of the compared call: chunk's Grad-CAM stage (what upstream computes), SaG's
# paper map.
COMPARED_OPTIONS: dict[str, dict[str, Any]] = {
    "chunk": {"stages": ("gradcam",)},
    "sag": {"combine": "product"},
}
# Maps compared between the two ways, per method.
COMPARED_MAPS = {"chunk": ("gradcam", "word_maps"), "sag": ("map",)}
CHUNK_STAGE_SETS: dict[str, tuple[str, ...]] = {
    "gradcam": ("gradcam",),
    "gradcam+affinity": ("gradcam", "affinity"),
    "all": ("gradcam", "affinity", "proposals"),
}


def map_differences(ours: Sequence[Any], upstream: Sequence[Any], keys: Sequence[str]) -> dict:
    """Max absolute difference of each stage map over all results, and that difference
    relative to the largest magnitude of the map (random weights give tiny Grad-CAMs)."""
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        diff, scale = 0.0, 0.0
        for a, b in zip(ours, upstream, strict=True):
            x, y = a.stages[key].float(), b.stages[key].float()
            if x.shape != y.shape:
                raise AssertionError(f"{key}: shapes {tuple(x.shape)} and {tuple(y.shape)}")
            diff = max(diff, float((x - y).abs().max()))
            scale = max(scale, float(x.abs().max()))
        out[key] = {"max_abs_diff": diff, "max_rel_diff": diff / scale if scale > 0 else diff,
                    "max_abs_value": scale}
    # The final heat maps at the image size, after min-max normalisation. Normalising
    # divides by the map's spread, which multiplies the float32 rounding of the raw map
    # by max|map| / (max - min) (large for near-flat random-weight maps); the relative
    # difference is therefore taken back to the raw map's scale by that factor.
    heat, heat_rel, widest = 0.0, 0.0, 0.0
    for a, b in zip(ours, upstream, strict=True):
        d = float(abs(a.heatmap - b.heatmap).max())
        low = a.stages[keys[0]].float()
        spread = float(low.max() - low.min())
        amplification = float(low.abs().max()) / spread if spread > 0 else 1.0
        heat, widest = max(heat, d), max(widest, amplification)
        heat_rel = max(heat_rel, d / max(amplification, 1.0))
    out["heatmap"] = {"max_abs_diff": heat, "max_rel_diff": heat_rel, "max_abs_value": 1.0,
                      "normalisation_amplification": widest}
    return out


def _figures(times: list[float], count: int) -> dict[str, Any]:
    import statistics

    median = float(statistics.median(times))
    return {
        "seconds": rounded(median),
        "seconds_per_expression": rounded(median / count),
        "expressions_per_second": rounded(count / median),
        "runs": [rounded(t) for t in times],
    }


def compare_with_upstream(
    bm: BenchModel,
    counts: Sequence[int] = COUNTS,
    reps: int = 5,
    warmup: int = 1,
    upstream_budget: int | None = None,
    check_count: int | None = None,
    memory: bool = True,
) -> dict[str, Any]:
    """wsris vs the upstream way for each number of expressions in ``counts``.

    First both ways run on the first ``check_count`` expressions (default: all; padding
    and batching included) and their maps are compared; this also warms the upstream
    way up, whose work does not depend on the count (one expression at a time).
    ``upstream_budget`` caps the expressions the upstream way runs per count (paper-size
    models are slow): with ``T`` expressions it takes part in
    ``max(1, min(reps, budget // T))`` rounds.
    """
    seg = bm.segmenter
    twin = as_upstream(seg)
    upstream_mb = float("nan")
    options = COMPARED_OPTIONS[bm.method]
    device = seg.device
    texts = bm.texts[: max(counts)]
    checked = texts[: check_count or len(texts)]

    ours_all = seg.segment(bm.image, checked, **options)
    upstream_all = twin.segment(bm.image, checked, **options)
    check = map_differences(ours_all, upstream_all, COMPARED_MAPS[bm.method])
    del ours_all, upstream_all

    result: dict[str, Any] = {"model": bm.describe(), "options": _jsonable(options),
                              "texts": texts, "maps": check, "maps_compared_on": len(checked),
                              "counts": {}}
    for count in counts:
        subset = texts[:count]
        fns = {
            "ours": lambda s=subset: seg.segment(bm.image, s, **options),
            "upstream": lambda s=subset: twin.segment(bm.image, s, **options),
        }
        up_reps = reps
        if upstream_budget is not None:
            up_reps = max(1, min(reps, upstream_budget // count))
        comp = interleaved(fns, reps, warmup, device, reps_for={"upstream": up_reps},
                           warmup_for={"upstream": 0})
        entry: dict[str, Any] = {
            "ours": _figures(comp.times["ours"], count),
            "upstream": _figures(comp.times["upstream"], count),
            "speedup": rounded(comp.speedup("upstream", "ours"), 3),
            "speedup_paired": rounded(comp.paired_speedup("upstream", "ours"), 3),
        }
        if memory:
            entry["ours"]["peak_memory_mb"] = measure_peak_mb(fns["ours"], device)
            if upstream_budget is None or count == counts[0]:
                upstream_mb = measure_peak_mb(fns["upstream"], device)
                entry["upstream"]["peak_memory_mb"] = upstream_mb
            else:  # one expression at a time: its peak is that of one expression
                entry["upstream"]["peak_memory_mb"] = upstream_mb
                entry["upstream"]["peak_memory_measured_with"] = counts[0]
        result["counts"][str(count)] = entry
    return result


def chunk_stages(
    bm: BenchModel, counts: Sequence[int] = COUNTS, reps: int = 3, warmup: int = 1,
    memory: bool = True,
) -> dict[str, Any]:
    """Seconds per expression of the chunk pipeline with its stages switched on one by
    one (Grad-CAM; + affinity; + proposals = all stages), interleaved; and the proposal
    step alone on the image the pipeline gives it."""
    from wsris.methods.chunk.pipeline import proposal_image
    from wsris.methods.chunk.proposals import generate_proposals

    seg = bm.segmenter
    device = seg.device
    max_proposals = seg.config["inference"].get("max_proposals") or 200
    work = proposal_image(bm.image)
    result: dict[str, Any] = {"model": bm.describe(), "counts": {}}
    for count in counts:
        subset = bm.texts[:count]
        fns = {
            name: (lambda s=subset, st=stages: seg.segment(bm.image, s, stages=st))
            for name, stages in CHUNK_STAGE_SETS.items()
        }
        fns["proposals_only"] = lambda: generate_proposals(work, max_proposals)
        comp = interleaved(fns, reps, warmup, device)
        entry = {name: _figures(comp.times[name], count) for name in CHUNK_STAGE_SETS}
        entry["proposals_only"] = {"seconds": rounded(comp.median("proposals_only")),
                                   "image": list(work.shape[:2])}
        if memory:
            entry["all"]["peak_memory_mb"] = measure_peak_mb(fns["all"], device)
        result["counts"][str(count)] = entry
    return result


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
