"""REFER-format loading, COCO mask decoding and the Shapes-Ref export round trip."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsris.data import open_dataset, parse_data_spec
from wsris.data.export import export_shapes
from wsris.data.masks import (
    mask_bbox,
    polygons_to_mask,
    rle_counts_to_string,
    rle_decode,
    rle_encode,
    rle_string_to_counts,
    segmentation_to_mask,
)
from wsris.data.refer import ReferDataset, load_refs
from wsris.data.shapes import ShapesRef
from wsris.errors import DatasetError, InvalidInputError

# ------------------------------------------------------------------------------ RLE


def test_rle_compressed_strings_hand_computed():
    # Runs 3, 5, 2 are single 5-bit groups: chr(48 + run).
    assert rle_counts_to_string([3, 5, 2]) == "352"
    # From the 4th run on, the difference to the run two places before is stored:
    # 4 - 1 = 3 -> "3"; 2 - 5 = -3 -> 29 (sign bit 0x10 set) -> chr(77) = "M".
    assert rle_counts_to_string([1, 1, 1, 4]) == "1113"
    assert rle_counts_to_string([1, 5, 1, 2]) == "151M"
    # 40 = 8 + 1 * 32: group 8 with the continuation bit (40 -> "X"), then 1 -> "1".
    assert rle_counts_to_string([40]) == "X1"
    for counts in ([3, 5, 2], [1, 1, 1, 4], [1, 5, 1, 2], [40], [0, 7, 1000, 3, 0, 2]):
        assert rle_string_to_counts(rle_counts_to_string(counts)) == counts


def test_rle_matches_pycocotools_reference_strings():
    # pycocotools.mask.encode of a 25x25 mask with a 5x5 square (values published in the
    # pytorchcocotools test suite).
    for a, b, expected in [(0, 5, "05d00000000d?"), (5, 10, "R45d00000000b;"),
                           (20, 25, "X`05d00000000")]:
        m = np.zeros((25, 25), dtype=bool)
        m[a:b, a:b] = True
        assert rle_encode(m)["counts"] == expected
        assert np.array_equal(rle_decode({"size": [25, 25], "counts": expected}), m)


def test_rle_column_major_and_uncompressed():
    # 2x3 mask; column-major order: (0,0)=0 (1,0)=1 (0,1)=1 (1,1)=1 (0,2)=0 (1,2)=0.
    m = np.array([[0, 1, 0], [1, 1, 0]], dtype=bool)
    assert rle_encode(m, compress=False) == {"size": [2, 3], "counts": [1, 3, 2]}
    assert np.array_equal(rle_decode({"size": [2, 3], "counts": [1, 3, 2]}), m)
    # A mask starting with a set pixel begins with a 0-length background run.
    full = np.ones((2, 2), dtype=bool)
    assert rle_encode(full, compress=False)["counts"] == [0, 4]
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (7, 3), (31, 17)]:
        r = rng.random(shape) < 0.4
        assert np.array_equal(rle_decode(rle_encode(r)), r)
    with pytest.raises(DatasetError, match="sum to"):
        rle_decode({"size": [2, 2], "counts": [1, 2]})


# ------------------------------------------------------------------------------ polygons


def test_polygon_square_and_triangle_hand_computed():
    # Pixels whose centres (c + .5, r + .5) fall in [1, 4) x [1, 4): a 3x3 block (area 9).
    sq = polygons_to_mask([[1, 1, 4, 1, 4, 4, 1, 4]], 6, 6)
    expected = np.zeros((6, 6), dtype=bool)
    expected[1:4, 1:4] = True
    assert np.array_equal(sq, expected)
    # Right triangle (0,0), (4,0), (0,4): centres with x + y < 4, i.e. c + r <= 2.
    tri = polygons_to_mask([[0, 0, 4, 0, 0, 4]], 4, 4)
    assert tri.astype(int).tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0],
                                        [0, 0, 0, 0]]


def test_several_polygons_are_unioned_and_degenerate_ones_ignored():
    two = [[0, 0, 2, 0, 2, 2, 0, 2], [1, 1, 3, 1, 3, 3, 1, 3], [5, 5, 6, 6]]
    m = segmentation_to_mask(two, 4, 4)
    assert m.astype(int).tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0],
                                      [0, 0, 0, 0]]
    # A single flat polygon (not nested) is accepted too; out-of-image parts are clipped.
    m = segmentation_to_mask([2, -1, 9, -1, 9, 9, 2, 9], 3, 4)
    assert m.astype(int).tolist() == [[0, 0, 1, 1]] * 3
    assert mask_bbox(m) == (2, 0, 2, 3)


# ------------------------------------------------------------------------------ REFER


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture()
def refer_root(tmp_path: Path) -> Path:
    """A tiny RefCOCO+-shaped dataset: 2 images, 3 annotations, 3 refs."""
    root = tmp_path / "refer"
    img_dir = root / "images" / "mscoco" / "images" / "train2014"
    rng = np.random.default_rng(0)
    im1 = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    im2 = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    _write_png(img_dir / "COCO_train2014_000000000001.png", im1)
    _write_png(img_dir / "COCO_train2014_000000000002.png", im2)
    rle_mask = np.zeros((5, 5), dtype=bool)
    rle_mask[1:3, 2:5] = True
    instances = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_000000000001.png", "height": 6, "width": 8},
            {"id": 2, "file_name": "COCO_train2014_000000000002.png", "height": 5, "width": 5},
        ],
        "annotations": [
            # Two polygons: [0,2)x[0,2) and [4,6)x[2,4) in (x, y).
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 6, 4],
             "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2], [4, 2, 6, 2, 6, 4, 4, 4]]},
            # Uncompressed RLE (crowd style) on the same image: column 7 fully set.
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [7, 0, 1, 6], "iscrowd": 1,
             "segmentation": {"size": [6, 8], "counts": [42, 6]}},
            {"id": 20, "image_id": 2, "category_id": 2, "bbox": [2, 1, 3, 2],
             "segmentation": rle_encode(rle_mask)},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    (root / "refcoco+").mkdir(parents=True)
    (root / "refcoco+" / "instances.json").write_text(json.dumps(instances))
    refs = [
        {"ref_id": 0, "ann_id": 10, "image_id": 1, "split": "val",
         "sentences": [{"sent_id": 100, "sent": "two squares", "raw": "Two squares."},
                       {"sent_id": 101, "sent": "left things", "raw": "left things"}]},
        {"ref_id": 1, "ann_id": 20, "image_id": 2, "split": "val",
         "sentences": [{"sent_id": 102, "sent": "the bar", "raw": "the bar"}]},
        {"ref_id": 2, "ann_id": 11, "image_id": 1, "split": "testA",
         "sentences": [{"sent_id": 103, "sent": "the column", "raw": "the column"}]},
    ]
    with open(root / "refcoco+" / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return root


def test_refer_loader_samples_masks_and_images(refer_root: Path):
    ds = ReferDataset(refer_root, "refcoco+", "unc", "val")
    assert len(ds) == 3 and ds.name == "refcoco+:unc:val"
    assert [ds[i].text for i in range(3)] == ["two squares", "left things", "the bar"]
    assert [ds[i].sample_id for i in range(3)] == ["100", "101", "102"]
    assert [ds.image_key(i) for i in range(3)] == [1, 1, 2]
    s = ds[0]
    expected = np.zeros((6, 8), dtype=bool)
    expected[0:2, 0:2] = True
    expected[2:4, 4:6] = True
    assert np.array_equal(s.mask, expected)
    assert s.image.shape == (6, 8, 3) and s.image.dtype == np.uint8
    column = np.zeros((6, 8), dtype=bool)
    column[:, 7] = True
    assert len(s.object_masks) == 2 and np.array_equal(s.object_masks[1], column)
    assert s.kind is None
    bar = ds[2].mask
    assert bar.sum() == 6 and bar[1:3, 2:5].all()
    test_a = ReferDataset(refer_root, "refcoco+", split="testA")  # split_by defaults to unc
    assert len(test_a) == 1 and np.array_equal(test_a[0].mask, column)
    # The image round trip is lossless (PNG) and in RGB order.
    bgr = cv2.imread(str(ds.image_path(2)))
    assert np.array_equal(ds[2].image, bgr[:, :, ::-1])


def test_refer_errors_name_the_path(refer_root: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match=re.escape(str(refer_root / "refcoco+/refs(umd).p"))):
        ReferDataset(refer_root, "refcoco+", "umd", "val")
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "nowhere"))):
        ReferDataset(tmp_path / "nowhere", "refcoco", "unc", "val")
    with pytest.raises(DatasetError, match="dataset folder not found"):
        ReferDataset(refer_root, "refcocog", "umd", "val")
    with pytest.raises(DatasetError, match="available: testA, val"):
        ReferDataset(refer_root, "refcoco+", "unc", "testB")
    img = refer_root / "images/mscoco/images/train2014/COCO_train2014_000000000002.png"
    img.unlink()
    ds = ReferDataset(refer_root, "refcoco+", "unc", "val")
    with pytest.raises(DatasetError, match=re.escape(str(img))):
        ds[2]
    (refer_root / "refcoco+" / "instances.json").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(refer_root / "refcoco+/instances.json"))):
        ReferDataset(refer_root, "refcoco+", "unc", "val")


def test_refs_pickle_python2_and_no_code(tmp_path: Path):
    # Hand-written protocol-2 pickle as Python 2 writes it: byte strings (SHORT_BINSTRING),
    # one of them Latin-1, which needs the fallback.
    p = tmp_path / "refs.p"
    p.write_bytes(b"\x80\x02]q\x00}q\x01(U\x05splitq\x02U\x03valq\x03U\x04sentq\x04"
                  b"U\x04caf\xe9q\x05ua.")
    assert load_refs(p) == [{"split": "val", "sent": "caf\u00e9"}]
    # A pickle that would call os.system is refused, not run.
    p.write_bytes(b"\x80\x02]q\x00cposix\nsystem\nq\x01X\x07\x00\x00\x00echo hiq\x02"
                  b"\x85q\x03Rq\x04a.")
    with pytest.raises(DatasetError, match="refused"):
        load_refs(p)


# ------------------------------------------------------------------------------ export


def test_export_round_trip_preserves_masks_sentences_and_pixels(tmp_path: Path):
    summary = export_shapes(tmp_path, ["val", "compositional"], n=4)
    assert summary["images"] == 8 and summary["sentences"] == 16
    for split in ("val", "compositional"):
        loaded = ReferDataset(tmp_path, "shapes", "unc", split)
        generated = ShapesRef(split, length=4).referring()
        assert len(loaded) == len(generated) == 8
        got = {}
        for i in range(len(loaded)):
            s = loaded[i]
            got[(s.image_id % 10_000_000, s.text)] = s
        for i in range(len(generated)):
            g = generated[i]
            s = got[(g.image_id, g.text)]
            assert np.array_equal(s.mask, g.mask)
            assert np.array_equal(s.image, g.image)
            assert s.kind == g.kind
            assert len(s.object_masks) == len(g.object_masks)
            assert all(np.array_equal(a, b) for a, b in zip(s.object_masks, g.object_masks,
                                                             strict=True))
    # The same files through a data spec.
    ds = open_dataset(f"shapes:unc:val@{tmp_path}")
    assert len(ds) == 8
    with pytest.raises(DatasetError, match="overwrite"):
        export_shapes(tmp_path, ["val"], n=1)


def test_data_specs():
    s = parse_data_spec("refcoco+:unc:val@/data/refer")
    assert (s.kind, s.dataset, s.split_by, s.split, str(s.root)) == (
        "refer", "refcoco+", "unc", "val", "/data/refer")
    s = parse_data_spec("refcocog:val@/r")
    assert (s.dataset, s.split_by, s.split) == ("refcocog", "umd", "val")
    s = parse_data_spec("refcocog:google:val@/r")
    assert s.split_by == "google"
    assert parse_data_spec("shapes:val") == parse_data_spec("shapes:default:val")
    assert parse_data_spec("shapes+:test").variant == "plus"
    assert parse_data_spec("shapes:attributes:train").variant == "attributes"
    assert str(parse_data_spec("shapes:plus:val")) == "shapes:plus:val"
    for bad in ("coco", "refcoco:unc:val:x@/r", "shapes", "shapes+:plus:val", ":val@/r"):
        with pytest.raises(InvalidInputError):
            parse_data_spec(bad)
    assert len(open_dataset("shapes:val", length=5)) == 10


# ------------------------------------------------------------------------------ pycocotools


def refer_api_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """The mask as the REFER API and COCO's annToRLE compute it (written from their
    code's documented steps, calling pycocotools directly)."""
    from pycocotools import mask as coco_mask

    segm = ann["segmentation"]
    if isinstance(segm, list):  # polygons: one RLE each, merged
        rle = coco_mask.merge(coco_mask.frPyObjects(segm, height, width))
    elif isinstance(segm["counts"], list):  # uncompressed RLE
        rle = coco_mask.frPyObjects(segm, height, width)
    else:  # compressed RLE
        rle = segm
    return coco_mask.decode(rle).astype(bool)


def test_refer_masks_equal_pycocotools_on_polygons_and_both_rle_forms(tmp_path: Path):
    rng = np.random.default_rng(7)
    h, w = 37, 53
    anns = []
    for k in range(12):  # random star-shaped polygons with fractional vertices
        n = int(rng.integers(3, 12))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(2, 20, n)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        poly = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
        anns.append({"segmentation": [poly.reshape(-1).round(2).tolist()]})
        if k % 3 == 0:  # two parts
            anns[-1]["segmentation"].append((poly.reshape(-1) * 0.5).round(2).tolist())
    from pycocotools import mask as coco_mask

    for _ in range(4):
        m = np.asfortranarray((rng.random((h, w)) < 0.3).astype(np.uint8))
        compressed = coco_mask.encode(m)
        anns.append({"segmentation": {"size": [h, w],
                                      "counts": compressed["counts"].decode("ascii")}})
        anns.append({"segmentation": rle_encode(m.astype(bool), compress=False)})
    for ann in anns:
        expected = refer_api_mask(
            {**ann, "segmentation": (
                {**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}
                if isinstance(ann["segmentation"], dict)
                and isinstance(ann["segmentation"]["counts"], str)
                else ann["segmentation"])}, h, w)
        got = segmentation_to_mask(ann["segmentation"], h, w)
        assert got.shape == (h, w) and got.dtype == bool
        np.testing.assert_array_equal(got, expected)


def test_rle_encoder_writes_what_pycocotools_writes():
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(11)
    for shape in [(1, 1), (3, 7), (40, 31), (64, 64)]:
        for density in (0.0, 0.05, 0.5, 1.0):
            m = rng.random(shape) < density
            ref = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
            assert rle_encode(m)["counts"] == ref["counts"].decode("ascii")
            assert rle_encode(m)["size"] == list(ref["size"])
