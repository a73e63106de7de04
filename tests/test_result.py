from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsris.result import SegmentationResult


def make(mask: np.ndarray, image: np.ndarray | None = None) -> SegmentationResult:
    return SegmentationResult(
        text="t", mask=mask, heatmap=mask.astype(np.float32), threshold=0.5,
        model="m", method="sag", score=0.25, image=image,
    )


def test_area_bbox_and_dict():
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    r = make(mask)
    assert r.area == 8
    assert r.bbox == (2, 1, 6, 3)
    d = r.to_dict()
    assert d["area"] == 8 and d["bbox"] == (2, 1, 6, 3) and d["size"] == [5, 7]
    assert make(np.zeros((3, 3), bool)).bbox is None


def test_save_writes_binary_png_at_mask_size(tmp_path):
    mask = np.zeros((4, 6), bool)
    mask[0, 0] = mask[3, 5] = True
    path = make(mask).save(tmp_path / "sub" / "m.png")
    back = np.asarray(Image.open(path))
    assert back.shape == (4, 6) and set(np.unique(back)) == {0, 255}
    np.testing.assert_array_equal(back == 255, mask)


def test_overlay_tints_only_the_mask():
    image = np.full((10, 10, 3), 100, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    out = np.asarray(make(mask, image).overlay(color=(200, 0, 0), alpha=0.5, outline=False))
    assert out.shape == (10, 10, 3)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(out[5, 5], [150, 50, 50])
    with_outline = np.asarray(make(mask, image).overlay(color=(200, 0, 0)))
    np.testing.assert_array_equal(with_outline[2, 2], [200, 0, 0])  # contour pixel
    with pytest.raises(ValueError, match="no image"):
        make(mask).overlay()


def test_heatmap_image_is_rgb_of_same_size():
    r = make(np.eye(4, dtype=bool))
    img = r.heatmap_image()
    assert img.size == (4, 4) and img.mode == "RGB"
