"""How often the Shapes-Ref domain check flags photographs and Shapes-Ref pictures.

    python scripts/domain_rates.py [--n 500] [--json rates.json]

Judges every scikit-image photograph and the first N pictures of Shapes-Ref val, the
drawings split and the ``drawn`` training variant with ``wsris.domain.SHAPES_DOMAIN``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from wsris.data.shapes import ShapesRef
from wsris.domain import SHAPES_DOMAIN, judge

# scikit-image's photographs (its other images are drawings, masks or phantoms)
PHOTOS = ["astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee",
          "coins", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
          "microaneurysms", "moon", "page", "retina", "rocket", "text"]


def _rgb(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


def main() -> None:
    import skimage.data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    photos = {p: judge(_rgb(getattr(skimage.data, p)()), SHAPES_DOMAIN) for p in PHOTOS}
    report: dict = {"photos": {p: {"in_domain": j.in_domain, "score": round(j.score, 4)}
                               for p, j in photos.items()}}
    print(f"photographs flagged: {sum(not j.in_domain for j in photos.values())} of "
          f"{len(photos)} (highest score {max(j.score for j in photos.values()):.3f})")
    for split, variant in (("val", "default"), ("drawings", "default"), ("train", "drawn")):
        ds = ShapesRef(split, variant=variant)
        judged = [judge(ds[i].image, SHAPES_DOMAIN) for i in range(args.n)]
        flagged = [i for i, j in enumerate(judged) if not j.in_domain]
        report[f"{variant}:{split}"] = {"n": args.n, "flagged": flagged,
                                        "min_score": min(j.score for j in judged)}
        print(f"shapes:{variant}:{split}: {len(flagged)} of {args.n} flagged "
              f"({100 * len(flagged) / args.n:.1f}%), lowest score "
              f"{min(j.score for j in judged):.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
