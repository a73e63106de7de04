"""Benchmark of the unsupervised mask proposals (the MCG stand-in of the chunk method).

Measures, per data set: average best overlap (ABO: for every ground-truth object mask, the
best IoU of any proposal, averaged over objects), the number of proposals, and seconds per
image at 384x384 and 640x480 (median over several runs after a warm-up). Prints a table and
writes ``benchmarks/results/proposals.json``.

Data: the Shapes-Ref val split (``wsris.data.shapes``, generated at 384 px and at its
native 128 px), plus this file's own procedural scenes (more occlusion, denser clutter and
noisier backgrounds than Shapes-Ref) as a harder check; timing on Shapes-Ref scenes and
on scikit-image's sample photos.

    .venv/bin/python -m benchmarks.proposals [--images N] [--synthetic N] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from wsris.methods.chunk.proposals import generate_proposals, proposal_ious

RESULTS = Path(__file__).resolve().parent / "results" / "proposals.json"


# ----------------------------------------------------------------- built-in scenes


def _polygon(cx: float, cy: float, r: float, n: int, rot: float, inner: float = 1.0):
    k = n * (2 if inner < 1.0 else 1)
    ang = rot + np.arange(k) * 2 * np.pi / k
    rad = np.full(k, r)
    if inner < 1.0:
        rad[1::2] = r * inner
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)


def synthetic_scene(
    rng: np.random.Generator, size: int = 384
) -> tuple[np.ndarray, list[np.ndarray]]:
    """2-6 flat-coloured shapes (circle, square, triangle, star, hexagon) on a gradient,
    noise or clutter background; returns the RGB image and the visible instance masks."""
    import cv2

    h = w = size
    kind = rng.choice(["gradient", "noise", "clutter"])
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == "gradient":
        t = np.linspace(0, 1, w)[None, :, None]
        t = np.broadcast_to(t, (h, w, 1))
        if rng.random() < 0.5:
            t = t.transpose(1, 0, 2)
        bg = (1 - t) * c0 + t * c1
    elif kind == "noise":
        low = rng.normal(0, 1, (h // 16, w // 16, 3))
        low = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
        bg = c0 + 30 * low + rng.normal(0, 12, (h, w, 3))
    else:
        bg = np.broadcast_to(c0.astype(np.float64), (h, w, 3)).copy()
        for _ in range(int(rng.integers(15, 40))):
            col = tuple(int(v) for v in rng.integers(0, 256, 3))
            p = rng.integers(0, size, 4)
            if rng.random() < 0.5:
                cv2.line(
                    bg, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, int(rng.integers(1, 4))
                )
            else:
                cv2.circle(bg, (int(p[0]), int(p[1])), int(rng.integers(2, 10)), col, -1)
    img = bg.astype(np.float64)
    owner = np.full((h, w), -1, dtype=np.int64)
    n = int(rng.integers(2, 7))
    for i in range(n):
        shape = rng.choice(["circle", "square", "triangle", "star", "hexagon"])
        r = rng.uniform(0.06, 0.18) * size
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        rot = rng.uniform(0, 2 * np.pi)
        m = np.zeros((h, w), np.uint8)
        if shape == "circle":
            cv2.circle(m, (int(cx), int(cy)), int(r), 1, -1)
        else:
            sides, inner = {
                "square": (4, 1.0),
                "triangle": (3, 1.0),
                "hexagon": (6, 1.0),
                "star": (5, 0.45),
            }[shape]
            poly = _polygon(cx, cy, r, sides, rot, inner)
            cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
        col = rng.integers(0, 256, 3)
        img[m > 0] = col
        owner[m > 0] = i
    img += rng.normal(0, 3, img.shape)
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    masks = [owner == i for i in range(n)]
    masks = [m for m in masks if m.sum() >= 0.002 * h * w]
    return rgb, masks


def _synthetic_samples(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [synthetic_scene(rng, size) for _ in range(n)]


def _shapes_ref_samples(n: int, size: int):
    """The first ``n`` Shapes-Ref val scenes at ``size`` px as (image, [object masks]), or
    None when ``wsris.data.shapes`` is not available."""
    try:
        from wsris.data.shapes import ShapesRef
    except ImportError:
        return None
    ds = ShapesRef("val", image_size=size)
    return [(s.image, [o.mask for o in s.objects]) for s in (ds[i] for i in range(n))]


def _photo_images():
    from skimage import data

    return {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")}


# -------------------------------------------------------------------- measuring


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def abo(samples, max_proposals: int) -> dict:
    """Average best overlap of the proposals with every object mask, and counts.

    ``abo_top_k`` uses only the k best-ranked proposals (a smaller cap returns exactly
    that prefix), which shows how good the ranking is.
    """
    caps = [k for k in (10, 25, 50, 100) if k < max_proposals]
    best, counts = [], []
    best_k: dict[int, list[float]] = {k: [] for k in caps}
    for img, masks in samples:
        props = generate_proposals(img, max_proposals)
        counts.append(len(props))
        for m in masks:
            ious = proposal_ious(props, m)
            best.append(float(ious.max(initial=0.0)))
            for k in caps:
                best_k[k].append(float(ious[:k].max(initial=0.0)))
    return {
        "abo": float(np.mean(best)),
        "abo_top_k": {str(k): float(np.mean(v)) for k, v in best_k.items()},
        "recall_at_0.5": float(np.mean(np.array(best) >= 0.5)),
        "recall_at_0.7": float(np.mean(np.array(best) >= 0.7)),
        "recall_at_0.85": float(np.mean(np.array(best) >= 0.85)),
        "objects": len(best),
        "images": len(samples),
        "mean_proposals": float(np.mean(counts)),
        "min_proposals": int(np.min(counts)),
    }


def seconds_per_image(
    images: list[np.ndarray], runs: int, max_proposals: int
) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds per call, after one warm-up.

    CPU time is reported too because the machines are shared: it is what one call costs
    when it has a core to itself (the work is single-threaded apart from short BLAS calls,
    which are limited to one thread).
    """
    generate_proposals(images[0], max_proposals)  # warm-up (imports, allocator)
    wall, cpu = [], []
    for _ in range(runs):
        for img in images:
            t, c = time.perf_counter(), time.process_time()
            generate_proposals(img, max_proposals)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return float(statistics.median(wall)), float(statistics.median(cpu))


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "higra", "scikit-image", "opencv-python-headless"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import cv2

        cv_threads = cv2.getNumThreads()
    except ImportError:
        cv_threads = None
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()})
    except ImportError:
        blas = None
    return {
        "platform": platform.platform(),
        "threadpools_default": blas,
        "blas_threads_in_generate_proposals": 1,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "opencv_threads": cv_threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100, help="Shapes-Ref val scenes for ABO")
    ap.add_argument("--synthetic", type=int, default=30, help="built-in scenes for ABO")
    ap.add_argument("--runs", type=int, default=3, help="timing runs per image")
    ap.add_argument("--max-proposals", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    size = 384

    quality: dict[str, dict] = {}
    shapes = _shapes_ref_samples(args.images, size)
    if shapes is not None:
        quality[f"Shapes-Ref val, first {args.images} scenes, {size} px"] = abo(
            shapes, args.max_proposals
        )
        native = _shapes_ref_samples(args.images, 128)
        quality[f"Shapes-Ref val, first {args.images} scenes, 128 px (native)"] = abo(
            native, args.max_proposals
        )
    synthetic = _synthetic_samples(args.synthetic, size)
    quality[f"built-in scenes (more occlusion and clutter), {size} px"] = abo(
        synthetic, args.max_proposals
    )

    scenes = [img for img, _ in (shapes or synthetic)[:4]]
    photos = _photo_images()
    timing = {}
    for w, h in ((384, 384), (640, 480)):
        row = {}
        for kind, imgs in (("scenes", scenes), ("photos", list(photos.values()))):
            wall, cpu = seconds_per_image(
                [_resize(i, w, h) for i in imgs], args.runs, args.max_proposals
            )
            row[f"{kind}_wall_s"], row[f"{kind}_cpu_s"] = wall, cpu
        timing[f"{w}x{h}"] = row
    photo_counts = {
        k: len(generate_proposals(_resize(v, 384, 384), args.max_proposals))
        for k, v in photos.items()
    }

    result = {
        "quality": quality,
        "seconds_per_image_median": timing,
        "timing_note": (
            "median over runs x images after one warm-up call, wall clock and process CPU "
            "time; scenes are Shapes-Ref val "
            "(or built-in) scenes resized, photos are scikit-image samples "
            f"({', '.join(photos)}) resized; 640x480 is processed at 512x384 (max_side=512)"
        ),
        "photo_proposal_counts_384": photo_counts,
        "max_proposals": args.max_proposals,
        "targets": {"abo": 0.85, "seconds_384": 0.5},
        "machine": _machine(),
        "versions": _versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'data':<68}{'ABO':>6}{'@10':>6}{'@50':>6}{'R@.85':>6}{'props':>6}{'objs':>5}")
    for name, q in quality.items():
        top = q["abo_top_k"]
        print(
            f"{name:<68}{q['abo']:>6.3f}{top.get('10', float('nan')):>6.3f}"
            f"{top.get('50', float('nan')):>6.3f}{q['recall_at_0.85']:>6.3f}"
            f"{q['mean_proposals']:>6.0f}{q['objects']:>5}"
        )
    print(f"\n{'seconds per image (median)':<28}{'scenes wall/cpu':>18}{'photos wall/cpu':>18}")
    for k, v in timing.items():
        print(
            f"{k:<28}{v['scenes_wall_s']:>11.3f}/{v['scenes_cpu_s']:.3f}"
            f"{v['photos_wall_s']:>12.3f}/{v['photos_cpu_s']:.3f}"
        )
    m = result["machine"]
    print(
        f"\n{m['cpu']} | {m['cpu_count']} cpus | load {m['loadavg_1min']:.2f} | "
        f"BLAS limited to 1 thread inside generate_proposals | wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
