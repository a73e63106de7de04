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
    mask[1:3, 2:6] = True  # rows 1-2, columns 2-5
    r = make(mask)
    assert r.area == 8
    assert r.bbox == (2, 1, 4, 2)  # COCO x, y, w, h
    assert r.bbox_xyxy == (2, 1, 6, 3)  # half-open corners
    d = r.to_dict()
    assert d["area"] == 8 and d["size"] == [5, 7]
    assert d["bbox"] == (2, 1, 4, 2) and d["bbox_xyxy"] == (2, 1, 6, 3)
    empty = make(np.zeros((3, 3), bool))
    assert empty.bbox is None and empty.bbox_xyxy is None


def test_bbox_matches_the_data_packages_coco_boxes():
    from wsris.data.masks import mask_bbox

    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = rng.random((9, 13)) > 0.9
        if mask.any():
            assert make(mask).bbox == mask_bbox(mask)


def random_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    masks = [rng.random((17, 23)) > p for p in (0.0, 0.5, 0.97, 1.0)]  # full ... empty
    blob = np.zeros((31, 40), bool)
    blob[5:20, 3:37] = True
    blob[0, 0] = blob[30, 39] = True  # first and last pixel set
    return [*masks, blob, np.ones((1, 1), bool), np.zeros((1, 1), bool)]


@pytest.mark.parametrize("compress", [True, False])
def test_rle_is_decoded_exactly_by_pycocotools(compress):
    mask_utils = pytest.importorskip("pycocotools.mask")
    for mask in random_masks():
        rle = make(mask).to_rle(compress=compress)
        assert rle["size"] == list(mask.shape)
        if not compress:  # uncompressed RLE goes through frPyObjects first
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        back = mask_utils.decode(rle)
        assert back.dtype == np.uint8 and back.shape == mask.shape
        np.testing.assert_array_equal(back.astype(bool), mask)
        assert int(mask_utils.area(rle)) == int(mask.sum())


def test_compressed_rle_equals_pycocotools_encoding():
    mask_utils = pytest.importorskip("pycocotools.mask")
    for mask in random_masks():
        theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        ours = make(mask).to_rle()
        assert ours["counts"] == theirs["counts"].decode("ascii")
        assert ours["size"] == list(theirs["size"])


def test_coco_result_entry_box_agrees_with_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    mask = random_masks()[4]
    entry = make(mask).to_coco(image_id=7, category_id=3)
    assert entry["image_id"] == 7 and entry["category_id"] == 3 and entry["score"] == 0.25
    np.testing.assert_array_equal(mask_utils.toBbox(entry["segmentation"]), entry["bbox"])
    assert entry["area"] == int(mask.sum())


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
    np.testing.assert_array_equal(with_outline[2, 5], [255, 255, 255])  # on the contour
    np.testing.assert_array_equal(with_outline[1, 5], [0, 0, 0])  # its dark edge outside
    np.testing.assert_array_equal(with_outline[3, 5], [0, 0, 0])  # and inside
    with pytest.raises(ValueError, match="no image"):
        make(mask).overlay()


@pytest.mark.parametrize("index", range(7))
def test_to_supervision_matches_the_real_package(index):
    sv = pytest.importorskip("supervision")
    mask = random_masks()[index]
    det = make(mask).to_supervision()
    assert isinstance(det, sv.Detections) and len(det) == 1
    np.testing.assert_array_equal(det.mask[0], mask)
    if mask.any():
        want = sv.mask_to_xyxy(mask[None], coordinate_convention="exclusive")
        np.testing.assert_array_equal(det.xyxy, want)
        np.testing.assert_array_equal(det.area, [mask.sum()])  # supervision's mask area
    else:
        np.testing.assert_array_equal(det.xyxy, [[0, 0, 0, 0]])
    assert det.confidence.tolist() == [0.25] and det.data["text"].tolist() == ["t"]


def test_heatmap_image_is_rgb_of_same_size():
    r = make(np.eye(4, dtype=bool))
    img = r.heatmap_image()
    assert img.size == (4, 4) and img.mode == "RGB"


def test_repr_is_one_short_line_with_the_summary():
    mask = np.zeros((200, 300), bool)
    mask[10:30, 40:100] = True
    r = SegmentationResult(
        text="the large red circle", mask=mask, heatmap=np.random.rand(200, 300).astype("f4"),
        threshold=0.3, model="sag-shapes", method="sag", score=0.87654,
        stages={"word_maps": np.zeros((5, 16, 16)), "slots": np.zeros((8, 16, 16))},
        image=np.zeros((200, 300, 3), np.uint8),
    )
    text = repr(r)
    assert "\n" not in text and len(text) < 250
    assert text == str(r)
    for part in ("'the large red circle'", "area=1200 px", "bbox=(40, 10, 60, 20)",
                 "score=0.877", "threshold=0.3", "stages=[word_maps, slots]", "300x200"):
        assert part in text, part
    long = make(np.zeros((2, 2), bool))
    long.text = "word " * 200
    assert len(repr(long)) < 250 and "(1000 characters)" in repr(long)
    assert "score=0.250" in repr(long) and "bbox=None" in repr(long)
