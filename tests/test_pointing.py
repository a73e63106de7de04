"""The pointing metric (TRIS's PointM and PointB) on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from wsris.errors import InvalidInputError
from wsris.evaluation.metrics import PointingHit, mask_box, peak, pointing, summarize_pointing


def l_shape() -> np.ndarray:
    """An L of target pixels in a 6 x 8 image: column 1 (rows 1-4) and row 4 (cols 1-5).
    Its box is x 1..5, y 1..4; (row 2, col 4) is inside the box but not the mask."""
    gt = np.zeros((6, 8), dtype=bool)
    gt[1:5, 1] = True
    gt[4, 1:6] = True
    return gt


def map_peaking_at(row: int, col: int) -> np.ndarray:
    heat = np.full((6, 8), 0.2, dtype=np.float32)
    heat[row, col] = 0.9
    return heat


def test_box_of_the_l():
    assert mask_box(l_shape()) == (1, 1, 5, 4)
    assert mask_box(np.zeros((3, 3), bool)) is None


@pytest.mark.parametrize("row, col, in_mask, in_box", [
    (4, 3, True, True),    # on the L's foot
    (2, 4, False, True),   # in the box's empty corner
    (1, 5, False, True),   # the box's top-right corner: bounds are inclusive
    (0, 0, False, False),  # outside both
    (5, 6, False, False),
])
def test_hits(row, col, in_mask, in_box):
    assert pointing(map_peaking_at(row, col), l_shape()) == PointingHit(in_mask, in_box)


def test_ties_take_the_first_peak_in_row_major_order():
    heat = np.zeros((6, 8), dtype=np.float32)
    heat[4, 3] = heat[0, 0] = 1.0  # (0, 0) comes first: outside
    assert peak(heat) == (0, 0)
    assert pointing(heat, l_shape()) == PointingHit(False, False)


def test_summary_and_shape_check():
    hits = [PointingHit(True, True), PointingHit(False, True), PointingHit(False, False),
            PointingHit(False, True)]
    assert summarize_pointing(hits) == {"PointM": 0.25, "PointB": 0.75}
    assert summarize_pointing([]) == {"PointM": 0.0, "PointB": 0.0}
    with pytest.raises(InvalidInputError, match="original image size"):
        pointing(np.zeros((3, 4)), np.zeros((4, 3), bool))


def test_every_method_reports_pointing():
    """The evaluation loop scores whatever map a segmenter's results carry."""
    from wsris.data.base import RefSample
    from wsris.evaluation.loop import evaluate

    gt = l_shape()

    class Result:
        def __init__(self, heat):
            self.heatmap, self.mask = heat, heat > 0.5

    class Maps:  # peaks on the L for the first text, in the box's corner for the second
        name, method = "hand-made", "any"

        def segment(self, image, texts, **options):
            return [Result(map_peaking_at(4, 3)), Result(map_peaking_at(2, 4))][:len(texts)]

    class Data:
        name = "hand"

        def __len__(self):
            return 2

        def image_key(self, i):
            return 0

        def __getitem__(self, i):
            return RefSample(str(i), 0, np.zeros((6, 8, 3), np.uint8), f"t{i}", gt, [gt])

    report = evaluate(Data(), Maps(), baselines=False, progress=False)
    assert report.metrics["model"]["PointM"] == 0.5
    assert report.metrics["model"]["PointB"] == 1.0
    assert "PointM) 50.00" in report.table()
