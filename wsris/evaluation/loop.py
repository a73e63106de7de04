"""The evaluation loop (sharded under torchrun) and the driver behind ``wsris eval``."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data.base import ReferringDataset, RefSample
from ..errors import DatasetError, InvalidInputError, WsrisError
from .metrics import (
    BASELINES,
    MaskStats,
    PointingHit,
    baseline_masks,
    mask_stats,
    pointing,
    summarize,
    summarize_pointing,
)
from .report import EvalReport, _describe, sample_ref


def load_dataset(spec: str, *, seed: int = 0, length: int | None = None,
                 image_root: str | Path | None = None) -> ReferringDataset:
    """The evaluation dataset of a ``--data`` spec (``shapes:val``,
    ``refcoco+:unc:val@/data/refer``, ...); see :func:`wsris.data.open_dataset`."""
    from ..data.spec import open_dataset

    return open_dataset(spec, seed=seed, length=length, image_root=image_root)


def variant_options(method: str, variant: str | None) -> dict[str, Any]:
    """The ``segment`` options of a method variant (``None`` = the model's defaults)."""
    if variant is None:
        return {}
    from ..registry import get_method, is_method

    if not is_method(method):
        raise InvalidInputError(f"no variants known for method {method!r}")
    return get_method(method).variant_options(variant)


def _dist_info() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _seed_all(seed: int, group: int) -> None:
    """Seed every RNG a model might use from (seed, image group) alone."""
    s = int(np.random.SeedSequence([seed, group]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    import torch

    torch.manual_seed(s)


def _groups(dataset: ReferringDataset, n: int) -> list[tuple[int, int]]:
    """[start, end) runs of consecutive samples sharing an image."""
    out: list[tuple[int, int]] = []
    start = 0
    prev = None
    for i in range(n):
        key = dataset.image_key(i)
        if i > 0 and key != prev:
            out.append((start, i))
            start = i
        prev = key
    if n > 0:
        out.append((start, n))
    return out


def _record(index: int, sample: RefSample, systems: dict[str, MaskStats],
            hit: PointingHit | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "index": index, "id": sample.sample_id, "image_id": sample.image_id,
        "text": sample.text, "kind": sample.kind, "gt_area": int(np.count_nonzero(sample.mask)),
    }
    for name, s in systems.items():
        rec[name] = {"iou": s.iou, "intersection": s.intersection, "union": s.union,
                     "pred_area": s.pred_area}
    if hit is not None and "model" in rec:
        rec["model"].update(point_mask=hit.in_mask, point_box=hit.in_box)
    return rec


def _stats_of(rec: dict[str, Any], system: str) -> MaskStats:
    r = rec[system]
    return MaskStats(r["intersection"], r["union"], r["pred_area"], rec["gt_area"])


ON_ERROR = ("fail", "skip")


def _bad_sample(exc: WsrisError, dataset: ReferringDataset, index: int) -> WsrisError:
    """``exc`` again, its message prefixed by who the bad sample is."""
    who = _describe(sample_ref(dataset, index), index)
    try:
        new = type(exc)(f"{who}: {exc}")
    except Exception:  # an error class with another constructor
        new = WsrisError(f"{who}: {exc}")
        new.exit_code = exc.exit_code
    return new


def _checked(sample: RefSample) -> RefSample:
    """``sample`` if its ground truth can be scored: a 2-D mask of the image's size with
    at least one pixel set. An empty or degenerate one (polygons of fewer than three
    points, empty, or off the image) would score every prediction as 0 or 1 silently, so
    it is a :class:`~wsris.errors.DatasetError` (a bad sample, skipped or named). Empty
    masks of other objects are left out of the baselines' draw."""
    mask = np.asarray(sample.mask)
    image = np.asarray(sample.image)
    if mask.ndim != 2 or image.ndim != 3 or mask.shape != image.shape[:2]:
        raise DatasetError(f"ground-truth mask of shape {mask.shape} for an image of shape "
                           f"{image.shape}")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise DatasetError("empty ground-truth mask (polygons of fewer than three points, "
                           "empty, or off the image)")
    sample.mask = mask
    sample.object_masks = [m for m in sample.object_masks
                           if np.shape(m) == mask.shape and np.asarray(m).any()]
    return sample


def evaluate(dataset: ReferringDataset, segmenter: Any = None, *,
             method_options: dict[str, Any] | None = None, limit: int | None = None,
             seed: int = 0, baselines: bool = True, progress: bool = True,
             meta: dict[str, Any] | None = None, on_error: str = "fail") -> EvalReport:
    """Evaluate ``segmenter`` (anything with ``segment(image, texts, **options)`` returning
    results with a ``.mask``) and/or the trivial baselines on the first ``limit`` samples.

    A sample that cannot be used (its image missing or unreadable, its text empty or
    unusable: any :class:`~wsris.errors.WsrisError` while reading or segmenting it) stops
    the run with that error, its message naming the dataset, ref id and sentence id, when
    ``on_error="fail"``; with ``"skip"`` the sample is left out of every figure (never
    scored as zero), counted in ``meta["skipped"]`` and listed in ``report.skipped``.

    Inside an initialised ``torch.distributed`` process group, each rank evaluates every
    world-size-th image group and the records are all-gathered, so every rank returns the
    same report, equal to that of a single process.
    """
    if segmenter is None and not baselines:
        raise InvalidInputError("nothing to evaluate: give a model or enable the baselines")
    if limit is not None and limit < 1:
        raise InvalidInputError(f"limit must be at least 1, got {limit}")
    if on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise DatasetError(f"{getattr(dataset, 'name', 'the dataset')} has no samples")
    options = dict(method_options or {})
    rank, world = _dist_info()
    groups = _groups(dataset, n)
    mine = list(range(rank, len(groups), world))
    total = sum(groups[g][1] - groups[g][0] for g in mine)

    from ..progress import tqdm

    bar = tqdm(total=total, desc=getattr(dataset, "name", "eval"), unit="sample",
               disable=not progress or rank != 0, dynamic_ncols=True)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    model_seconds = 0.0
    running = []
    check_text = getattr(getattr(segmenter, "tokenizer", None), "check", None)

    def refuse(i: int, exc: WsrisError) -> None:
        if on_error == "fail":
            raise _bad_sample(exc, dataset, i) from exc
        skipped.append({**sample_ref(dataset, i), "index": i,
                        "error": f"{type(exc).__name__}: {exc}"})

    try:
        for g in mine:
            start, end = groups[g]
            indices: list[int] = []
            samples: list[RefSample] = []
            for i in range(start, end):
                try:
                    sample = _checked(dataset[i])
                    if check_text is not None:
                        check_text([sample.text])
                except WsrisError as exc:
                    refuse(i, exc)
                    continue
                indices.append(i)
                samples.append(sample)
            preds: list[np.ndarray] | None = None
            heats: list[Any] = []
            if segmenter is not None and samples:
                _seed_all(seed, g)
                t0 = time.perf_counter()
                try:
                    results = segmenter.segment(samples[0].image, [s.text for s in samples],
                                                **options)
                except WsrisError as exc:
                    for i in indices:
                        refuse(i, exc)
                    indices, samples = [], []
                    results = []
                model_seconds += time.perf_counter() - t0
                if len(results) != len(samples):
                    raise WsrisError(f"the model returned {len(results)} results for "
                                     f"{len(samples)} texts")
                preds = [np.asarray(r.mask) for r in results]
                heats = [getattr(r, "heatmap", None) for r in results]
            for k, (i, sample) in enumerate(zip(indices, samples, strict=True)):
                systems: dict[str, MaskStats] = {}
                hit = None
                if preds is not None:
                    systems["model"] = mask_stats(preds[k], sample.mask)
                    if heats[k] is not None:
                        hit = pointing(heats[k], sample.mask)
                    running.append(systems["model"].iou)
                if baselines:
                    rng = np.random.default_rng([seed, i])
                    for name, m in baseline_masks(sample, rng).items():
                        systems[name] = mask_stats(m, sample.mask)
                records.append(_record(i, sample, systems, hit))
            bar.update(end - start)
            if running:
                bar.set_postfix(mIoU=f"{100 * float(np.mean(running)):.2f}")
    finally:
        bar.close()

    if world > 1:
        import torch.distributed as dist

        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (records, model_seconds, skipped))
        records = [r for part, _, _ in gathered for r in part]
        model_seconds = sum(s for _, s, _ in gathered)
        skipped = [r for _, _, part in gathered for r in part]
    records.sort(key=lambda r: r["index"])
    skipped.sort(key=lambda r: r["index"])
    if not records:
        raise DatasetError(f"all {len(skipped)} samples were skipped, nothing to score; the "
                           f"first: {_describe(skipped[0], skipped[0]['index'])}: "
                           f"{skipped[0]['error']}")

    systems_order = (["model"] if segmenter is not None else []) + (
        list(BASELINES) if baselines else [])
    metrics = {s: summarize([_stats_of(r, s) for r in records]) for s in systems_order}
    pointed = [PointingHit(r["model"]["point_mask"], r["model"]["point_box"])
               for r in records if "point_mask" in r.get("model", {})]
    if pointed:
        metrics["model"].update(summarize_pointing(pointed))
    by_kind: dict[str, dict[str, dict[str, float]]] = {}
    kinds = sorted({r["kind"] for r in records if r["kind"] is not None})
    for kind in kinds:
        sub = [r for r in records if r["kind"] == kind]
        by_kind[kind] = {s: summarize([_stats_of(r, s) for r in sub]) for s in systems_order}
    info = {
        "dataset": getattr(dataset, "name", type(dataset).__name__),
        "samples": len(records),
        "skipped": len(skipped),
        "on_error": on_error,
        "seed": seed,
        "method_options": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in options.items()},
        "world_size": world,
        "model_seconds_per_sample": model_seconds / len(records) if records else 0.0,
    }
    if segmenter is not None:
        info["model"] = getattr(segmenter, "name", type(segmenter).__name__)
        info["method"] = getattr(segmenter, "method", None)
    info.update(meta or {})
    return EvalReport(info, metrics, by_kind, records, skipped)


# Command-line driver (what `wsris eval` runs)


def _json_plan(json_path: str | Path | None, spec: Any, images: str | Path | None,
               overwrite: bool) -> Any:
    """The checked output of the JSON report (rank 0), or None."""
    if json_path is None or int(os.environ.get("RANK", "0")) != 0:
        return None
    from ..safe_files import AtomicFile

    inputs = tuple(Path(p).expanduser() for p in (getattr(spec, "root", None), images)
                   if p is not None)
    return AtomicFile(Path(json_path), "--json", overwrite=overwrite, inputs=inputs)


def run(*, data: str, model: str | None = None, limit: int | None = None,
        json_path: str | Path | None = None, baselines: bool = True,
        variant: str | None = None, seed: int = 0, device: str = "auto",
        threshold: float | None = None, images: str | Path | None = None,
        progress: bool = True, echo: Any = print, on_error: str = "fail",
        overwrite: bool = False) -> EvalReport:
    """Open the data, check its images, load the model, evaluate (sharded under
    torchrun), print the table and write the JSON (rank 0 only). Returns the report on
    every rank.

    ``json_path`` is checked before anything else (not a folder, not a dataset file, not
    an existing file unless ``overwrite``, a place that can be written) and written
    atomically at the end."""
    from ..data.spec import open_dataset, parse_data_spec

    spec = parse_data_spec(data)
    if variant is not None and model is None:
        raise InvalidInputError("--variant needs --model")
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit must be at least 1, got {limit}")
    if on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    plan = _json_plan(json_path, spec, images, overwrite)
    dataset = open_dataset(spec, image_root=images)
    missing = dataset.missing_images() if hasattr(dataset, "missing_images") else []
    if missing:
        names = ", ".join(str(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        if on_error == "fail":
            raise DatasetError(f"{dataset.name}: {len(missing)} image file(s) missing: "
                               f"{names}{more} (--on-error skip leaves their samples out)")
        echo(f"wsris: warning: {len(missing)} image file(s) missing ({names}{more}); "
             "their samples are skipped")

    import torch
    import torch.distributed as dist

    created = False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device != "cpu"
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        dist.init_process_group("nccl" if use_cuda else "gloo")
        created = True
    try:
        if plan is not None:
            plan.prepare()  # the JSON's place is proven writable before the model loads
        segmenter = None
        options: dict[str, Any] = {}
        if model is not None:
            from ..api import load

            segmenter = load(model, device=device)
            options = variant_options(segmenter.method, variant)
            if threshold is not None:
                options["threshold"] = threshold
        report = evaluate(dataset, segmenter, method_options=options, limit=limit,
                          seed=seed, baselines=baselines, progress=progress,
                          meta={"data": str(spec), "variant": variant}, on_error=on_error)
        rank, _ = _dist_info()
        if rank == 0:
            title = f"{report.meta['dataset']}: {report.meta['samples']} samples, seed {seed}"
            if report.skipped:
                title += f", {len(report.skipped)} skipped"
            if segmenter is not None:
                title += (f"; model {report.meta['model']} ({report.meta['method']}"
                          + (f", variant {variant}" if variant else "") + ")")
            echo(title)
            echo(report.table())
            if plan is not None:
                text = json.dumps(report.to_dict(), indent=1)
                plan.commit(lambda p: p.write_text(text, encoding="utf-8"))
                echo(f"wrote {json_path}")
        return report
    except BaseException:
        if plan is not None:
            plan.abort()
        raise
    finally:
        if created:
            dist.destroy_process_group()
