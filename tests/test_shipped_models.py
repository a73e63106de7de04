"""Regression tests of the bundled trained models on 100 fixed Shapes-Ref val expressions.

Each model's heat map must rank the referred object first (the object with the highest
mean heat-map value is the target) as often as when it was bundled. The thresholds are the
figures measured then (0.68 for albef-chunk-shapes, 0.75 for sag-shapes), less 0.05 for
numeric differences between machines; chance (a random object) is 0.294 on these 100
expressions. Both must stay far above chance (both still miss many location phrases,
which Shapes-Ref states relative to the other candidates; see docs/results.md).
"""

from __future__ import annotations

import numpy as np
import pytest

import wsris
from wsris.data.shapes import ShapesRef

N = 100
#: measured pick rate on the first 100 val expressions at bundling, minus 0.05
PICK_AT_LEAST = {"albef-chunk-shapes": 0.63, "sag-shapes": 0.70}
FAR_ABOVE_CHANCE = {"albef-chunk-shapes", "sag-shapes"}
#: the chunk model's heat map before proposals is what ranks the objects
OPTIONS = {"albef-chunk-shapes": {"stages": ["gradcam"]}, "sag-shapes": {}}


def pick_rate(name: str) -> tuple[float, float]:
    seg = wsris.load(name, device="cpu")
    data = ShapesRef("val").referring()
    picks, chance = [], []
    for i in range(N):
        s = data[i]
        heat = seg.segment(s.image, s.text, **OPTIONS[name]).heatmap
        means = [heat[m].mean() for m in s.object_masks]
        target = next(k for k, m in enumerate(s.object_masks) if (m == s.mask).all())
        picks.append(int(np.argmax(means)) == target)
        chance.append(1 / len(s.object_masks))
    return float(np.mean(picks)), float(np.mean(chance))


@pytest.mark.parametrize("name", sorted(PICK_AT_LEAST))
def test_shipped_model_picks_the_referred_object(name):
    rate, chance = pick_rate(name)
    assert chance == pytest.approx(0.294, abs=0.005)
    if name in FAR_ABOVE_CHANCE:
        assert PICK_AT_LEAST[name] >= chance + 0.15  # the threshold itself is far above chance
    assert rate >= PICK_AT_LEAST[name], (name, rate, chance)


@pytest.mark.parametrize("name", sorted(PICK_AT_LEAST))
def test_shipped_model_answers_different_texts_differently(name):
    from pathlib import Path

    from PIL import Image

    image = np.asarray(Image.open(Path(__file__).resolve().parents[1] / "examples"
                                  / "shapes_scene.png").convert("RGB"))
    texts = ["the large red circle", "blue triangle", "cyan circle"]
    masks = [r.mask for r in wsris.load(name, device="cpu").segment(image, texts)]
    assert any(not np.array_equal(masks[0], m) for m in masks[1:])
