"""Metrics, baselines and variant options, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from wsris.data.base import RefSample
from wsris.errors import InvalidInputError
from wsris.evaluation import (
    MaskStats,
    baseline_masks,
    centre_box,
    iou,
    mask_stats,
    summarize,
    variant_options,
)


def test_mask_stats_hand_computed():
    pred = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    gt = np.array([[0, 1, 1], [1, 1, 0]], dtype=bool)
    s = mask_stats(pred, gt)
    # I = 2 ((0,1), (1,0)); P = 3; G = 4; U = 3 + 4 - 2 = 5.
    assert s == MaskStats(intersection=2, union=5, pred_area=3, gt_area=4)
    assert s.iou == pytest.approx(0.4)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(0.5)
    # uint8 0/255 masks count as boolean.
    assert mask_stats(pred.astype(np.uint8) * 255, gt) == s


def test_empty_cases_are_zero_not_nan():
    empty = np.zeros((3, 3), dtype=bool)
    full = np.ones((3, 3), dtype=bool)
    s = mask_stats(empty, empty)
    assert (s.iou, s.precision, s.recall) == (0.0, 0.0, 0.0)  # union 0 -> IoU 0
    s = mask_stats(empty, full)  # empty prediction: precision 0 (SaG: 0 when I = 0)
    assert (s.iou, s.precision, s.recall) == (0.0, 0.0, 0.0)
    s = mask_stats(full, empty)  # empty ground truth: recall 0
    assert (s.iou, s.precision, s.recall) == (0.0, 0.0, 0.0)
    assert iou(full, full) == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(InvalidInputError, match="original image size"):
        mask_stats(np.zeros((4, 4)), np.zeros((4, 5)))


def test_summarize_hand_computed():
    stats = [
        MaskStats(4, 4, 4, 4),  # IoU 1,    precision 1,   recall 1
        MaskStats(2, 4, 2, 4),  # IoU 0.5,  precision 1,   recall 0.5
        MaskStats(0, 0, 0, 0),  # IoU 0,    precision 0,   recall 0
        MaskStats(1, 4, 4, 1),  # IoU 0.25, precision .25, recall 1
    ]
    m = summarize(stats)
    assert m["n"] == 4
    assert m["mIoU"] == pytest.approx(1.75 / 4)
    assert m["cIoU"] == pytest.approx(7 / 12)
    assert m["Pr@0.3"] == 0.5
    assert m["Pr@0.5"] == 0.5  # IoU exactly at the threshold counts
    assert m["Pr@0.7"] == 0.25 and m["Pr@0.9"] == 0.25
    assert m["precision"] == pytest.approx(2.25 / 4)
    assert m["recall"] == pytest.approx(2.5 / 4)
    # Thresholds are inclusive for exact decimal IoUs too.
    m = summarize([MaskStats(3, 10, 3, 10), MaskStats(7, 10, 7, 10)])
    assert (m["Pr@0.3"], m["Pr@0.5"], m["Pr@0.7"], m["Pr@0.9"]) == (1.0, 0.5, 0.5, 0.0)
    assert summarize([])["mIoU"] == 0.0


def test_centre_box():
    assert np.argwhere(centre_box(4, 4)).tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    box = centre_box(6, 8)
    assert box.sum() == 3 * 4 and box[2:4, 2:6].all() and box[1:5, 2:6].sum() == 12
    assert box[0].sum() == 0 and box[:, :2].sum() == 0


def test_baselines():
    a = np.zeros((4, 4), dtype=bool)
    a[0, :2] = True
    b = np.zeros((4, 4), dtype=bool)
    b[3, 3] = True
    sample = RefSample("s", 0, np.zeros((4, 4, 3), np.uint8), "x", a, [a, b])
    m = baseline_masks(sample, np.random.default_rng([0, 5]))
    assert np.array_equal(m["all_objects"], a | b)
    expected = [a, b][int(np.random.default_rng([0, 5]).integers(2))]
    assert np.array_equal(m["random_object"], expected)
    picks = {int(baseline_masks(sample, np.random.default_rng([0, i]))["random_object"].sum())
             for i in range(20)}
    assert picks == {1, 2}  # both objects get drawn
    lonely = RefSample("s", 0, np.zeros((4, 4, 3), np.uint8), "x", a, [])
    assert not baseline_masks(lonely, np.random.default_rng(0))["all_objects"].any()


def test_variant_options():
    assert variant_options("chunk", "gradcam") == {"stages": ("gradcam",)}
    assert variant_options("chunk", "affinity") == {"stages": ("gradcam", "affinity")}
    assert variant_options("chunk", "proposals") == {
        "stages": ("gradcam", "affinity", "proposals")}
    assert variant_options("sag", "product") == {"combine": "product"}
    assert variant_options("sag", "min") == {"combine": "min"}
    assert variant_options("sag", None) == {}
    with pytest.raises(InvalidInputError, match="gradcam, affinity, proposals"):
        variant_options("chunk", "max")
    with pytest.raises(InvalidInputError):
        variant_options("clip", "max")
