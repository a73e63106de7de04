"""Encode once, ask many: k single-phrase calls on one encoded image vs on the raw image.

    nice -n 19 .venv/bin/python -m benchmarks.encode_reuse [--models tiny-chunk,tiny-sag,
        paper-chunk] [--reps N] [--json benchmarks/results/encode_reuse.json]

An interactive user (a notebook, a UI) asks one phrase at a time. For k = 1, 4, 16 this
times ``k`` calls ``seg.segment(image, text_i)`` (every call decodes and encodes the image
again) against ``encoded = seg.encode(image)`` followed by ``k`` calls
``seg.segment(encoded, text_i)`` (the encode is counted in), interleaved, with the
model's default inference options (chunk: Grad-CAM, affinity and proposals; SaG: the
paper map). The ratio raw / encoded is the speed-up; every ratio in one JSON comes from
one run on one machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import wsris  # noqa: E402  (first: its thread policy is set before torch is imported)

from .common import interleaved, load_average, machine_info, rounded, write_report  # noqa: E402
from .models import build  # noqa: E402

COUNTS = (1, 4, 16)
MODELS = {  # label -> (method, size)
    "tiny-chunk": ("chunk", "tiny"),
    "tiny-sag": ("sag", "tiny"),
    "paper-chunk": ("chunk", "paper"),
    "paper-sag": ("sag", "paper"),
}
DEFAULT_MODELS = ("tiny-chunk", "tiny-sag", "paper-chunk")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "encode_reuse.json"


def bundled_sag():
    """The bundled ``sag-shapes`` model with its image and expressions."""
    from .models import BenchModel, expressions, scene

    seg = wsris.load("sag-shapes", device="cpu")
    return BenchModel(seg, "sag", "tiny", "sag-shapes (bundled)", scene("tiny"), expressions(16))


def run_model(label: str, reps: int) -> dict[str, Any]:
    method, size = MODELS[label]
    bench = bundled_sag() if label == "tiny-sag" else build(method, size, device="cpu")
    seg, image, texts = bench.segmenter, bench.image, bench.texts
    device = seg.device
    rows = []
    for k in COUNTS:
        chosen = texts[:k]

        def raw(chosen=chosen):
            return [seg.segment(image, t) for t in chosen]

        def encoded(chosen=chosen):
            enc = seg.encode(image)
            return [seg.segment(enc, t) for t in chosen]

        comp = interleaved({"raw": raw, "encoded": encoded}, reps=reps, warmup=1, device=device)
        rows.append({
            "k": k,
            "raw_s": rounded(comp.median("raw")),
            "encoded_s": rounded(comp.median("encoded")),
            "raw_per_call_s": rounded(comp.median("raw") / k),
            "encoded_per_call_s": rounded(comp.median("encoded") / k),
            "speedup": rounded(comp.speedup("raw", "encoded"), 3),
            "paired_speedup": rounded(comp.paired_speedup("raw", "encoded"), 3),
            "rounds": len(comp.times["raw"]),
        })
        print(f"{label:12s} k={k:2d}  raw {rows[-1]['raw_s']:8.3f} s  encoded "
              f"{rows[-1]['encoded_s']:8.3f} s  x{rows[-1]['speedup']}", flush=True)
    return {"model": bench.describe() | {"label": bench.label}, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--reps", type=int, default=3, help="rounds for tiny models")
    parser.add_argument("--paper-reps", type=int, default=1)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    labels = [m for m in args.models.split(",") if m]
    unknown = set(labels) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; known: {list(MODELS)}")
    import torch

    out: dict[str, Any] = {
        "what": "k single-phrase segment() calls on one image: raw image vs encode() once",
        "machine": machine_info(torch.device("cpu")),
        "load_average_before": load_average(),
        "results": {},
    }
    for label in labels:
        reps = args.paper_reps if MODELS[label][1] == "paper" else args.reps
        out["results"][label] = run_model(label, reps)
    out["load_average_after"] = load_average()
    write_report(args.json, out)


if __name__ == "__main__":
    main()
