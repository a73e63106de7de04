"""Render a grid of Shapes-Ref samples with their expressions to docs/shapes_samples.png.

Usage: python scripts/make_shapes_figure.py [--split val] [--n 8] [--out docs/shapes_samples.png]

Each panel shows one scene; each expression is printed under it with its kind tag, and
the object it refers to is outlined (first expression black, second magenta).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wsris.data.shapes import ShapesRef  # noqa: E402

OUTLINE = [(0, 0, 0), (255, 0, 255), (255, 255, 255)]
TEXT = ["black", "darkmagenta", "dimgray"]
SCALE = 3


def draw_outline(big: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int],
                 thickness: int) -> np.ndarray:
    """Draw ``mask``'s contour, scaled by SCALE, onto the upscaled image ``big``."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    scaled = [(c * SCALE + SCALE // 2).astype(np.int32) for c in contours]
    big = np.ascontiguousarray(big)
    cv2.drawContours(big, scaled, -1, colour, thickness)
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--variant", default="default")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--dpi", type=int, default=72)
    ap.add_argument("--out", type=Path, default=Path("docs/shapes_samples.png"))
    args = ap.parse_args()

    ds = ShapesRef(args.split, variant=args.variant)
    rows = (args.n + args.cols - 1) // args.cols
    fig, axes = plt.subplots(rows, args.cols, figsize=(3.0 * args.cols, 4.2 * rows))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for k, ax in zip(range(args.n), np.atleast_1d(axes).ravel(), strict=False):
        sample = ds[args.start + k]
        big = cv2.resize(sample.image, None, fx=SCALE, fy=SCALE,
                         interpolation=cv2.INTER_NEAREST)
        for j, e in reversed(list(enumerate(sample.expressions))):
            big = draw_outline(big, sample.objects[e.target].mask, OUTLINE[j % 3],
                               3)
        ax.imshow(big)
        ax.set_title(f"{args.split} #{args.start + k}", fontsize=9)
        lines = [(line, j) for j, e in enumerate(sample.expressions)
                 for line in textwrap.wrap(f"[{e.kind}] {e.text}", 36)]
        for k, (line, j) in enumerate(lines):
            ax.text(0.0, -0.03 - 0.075 * k, line, transform=ax.transAxes, fontsize=8,
                    va="top", color=TEXT[j % 3])
    fig.suptitle("Shapes-Ref val: each expression's target is outlined "
                 "(first expression black, second magenta)",
                 fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.92, bottom=0.1, wspace=0.1,
                        hspace=0.6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
