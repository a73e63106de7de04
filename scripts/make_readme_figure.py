"""Render the README's picture: bundled models on the bundled example image.

Usage: python scripts/make_readme_figure.py [--models sag-shapes albef-chunk-shapes]
                                            [--out docs/readme_result.png]

One row per model: the input, then one overlay per expression (prediction in magenta, the
ground-truth object outlined in green, IoU in the title). The expressions and their
targets come from examples/shapes_scene.json, so the picture shows real, unselected
results, failures included.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import wsris  # noqa: E402
from wsris.data.shapes import ShapesRef  # noqa: E402
from wsris.evaluation import iou  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "shapes_scene.png"
EXAMPLE_SCENE = 3  # as in scripts/make_example.py


def scene_masks() -> list[np.ndarray]:
    """Object masks of the example scene, regenerated as scripts/make_example.py made it."""
    scene = ShapesRef("test", image_size=256, expressions_per_scene=4)[EXAMPLE_SCENE]
    return [np.asarray(o.mask, dtype=bool) for o in scene.objects]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sag-shapes", "albef-chunk-shapes"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "readme_result.png")
    parser.add_argument("--n", type=int, default=4, help="expressions per row")
    args = parser.parse_args()

    meta = json.loads(EXAMPLE.with_suffix(".json").read_text())
    expressions = meta["expressions"][: args.n]
    masks = scene_masks()
    texts = [e["text"] for e in expressions]
    fig, axes = plt.subplots(len(args.models), len(texts) + 1,
                             figsize=(2.9 * (len(texts) + 1), 3.7 * len(args.models)),
                             squeeze=False)
    for row, name in enumerate(args.models):
        seg = wsris.load(name)
        results = seg.segment(EXAMPLE, texts)
        axes[row, 0].imshow(results[0].image)
        axes[row, 0].set_title(f"{name}\ninput", fontsize=9)
        for col, (expr, r) in enumerate(zip(expressions, results, strict=True), start=1):
            gt = masks[expr["target"]]
            shown = np.asarray(r.overlay(color=(255, 0, 255))).copy()
            contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(shown, contours, -1, (0, 200, 0), 2)
            axes[row, col].imshow(shown)
            axes[row, col].set_title(f"{r.text!r}\nIoU {iou(r.mask, gt):.2f}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Bundled models on examples/shapes_scene.png: prediction magenta, "
                 "target outlined green", fontsize=10)
    plt.tight_layout(rect=(0, 0, 1, 0.94))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
