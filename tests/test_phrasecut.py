"""The VGPhraseCut reader, on a hand-made dataset folder in the downloader's layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsris.data import PhraseCutDataset, open_dataset, parse_data_spec
from wsris.errors import DatasetError, InvalidInputError

# a 4x3-pixel rectangle: pixel centres (col + .5, row + .5) inside x in (1, 5), y in (1, 4)
RECT = [[1, 1], [5, 1], [5, 4], [1, 4]]
# a second instance: the 2x2 square x in (7, 9), y in (5, 7)
SQUARE = [[7, 5], [9, 5], [9, 7], [7, 7]]


def _task(task_id: str, image_id: int, phrase: str, polygons, kind: str | None = "name"):
    return {
        "task_id": task_id,
        "image_id": image_id,
        "ann_ids": [1],
        "instance_boxes": [[0, 0, 1, 1]] * len(polygons),
        "Polygons": polygons,
        "phrase": phrase,
        "phrase_structure": {"name": phrase, "attributes": [], "type": kind},
    }


@pytest.fixture
def phrasecut_root(tmp_path: Path) -> Path:
    root = tmp_path / "VGPhraseCut_v0"
    (root / "images").mkdir(parents=True)
    for image_id, (h, w) in {11: (10, 12), 22: (8, 8)}.items():
        image = np.full((h, w, 3), image_id, np.uint8)
        image[:, : w // 2] = (255, 0, 0)  # red in RGB: checks the BGR -> RGB conversion
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), image[:, :, ::-1].copy())
    tasks = [
        _task("11__a", 11, "two things", [[RECT], [SQUARE]], kind="verbose"),
        _task("22__a", 22, "box", [[RECT]]),
        _task("11__b", 11, "square", [[SQUARE]], kind="attribute"),
    ]
    (root / "refer_val.json").write_text(json.dumps(tasks))
    return root


def test_tasks_grouped_by_image_with_unioned_instance_masks(phrasecut_root: Path):
    ds = PhraseCutDataset(phrasecut_root, "val")
    assert len(ds) == 3 and ds.name == "phrasecut:val"
    # the two tasks of image 11 are consecutive, in first-appearance order
    assert [ds.image_key(i) for i in range(3)] == [11, 11, 22]
    first = ds[0]
    assert first.text == "two things" and first.kind == "verbose" and first.sample_id == "11__a"
    assert first.image.shape == (10, 12, 3)
    assert first.image[0, 0, 0] > 200 and first.image[0, 0, 2] < 60  # RGB order
    assert first.mask.sum() == 12 + 4  # rectangle 4x3 plus square 2x2
    assert first.mask[1:4, 1:5].all() and first.mask[5:7, 7:9].all()
    second = ds[1]
    assert second.text == "square" and second.mask.sum() == 4
    # the image's objects are the target regions of all its tasks
    assert [m.sum() for m in second.object_masks] == [16, 4]
    third = ds[2]
    assert third.image.shape == (8, 8, 3) and third.mask.sum() == 12
    with pytest.raises(IndexError):
        ds[3]


def test_phrasecut_data_spec_and_open_dataset(phrasecut_root: Path):
    spec = parse_data_spec(f"phrasecut:val@{phrasecut_root}")
    assert (spec.kind, spec.split, spec.root) == ("phrasecut", "val", phrasecut_root)
    assert str(spec) == f"phrasecut:val@{phrasecut_root}"
    assert len(open_dataset(spec)) == 3
    with pytest.raises(InvalidInputError):
        parse_data_spec(f"phrasecut:unc:val@{phrasecut_root}")


def test_phrasecut_errors_name_the_problem(phrasecut_root: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="root folder not found"):
        PhraseCutDataset(tmp_path / "nowhere", "val")
    with pytest.raises(DatasetError, match="no split 'testA'"):
        PhraseCutDataset(phrasecut_root, "testA")
    with pytest.raises(DatasetError, match="refer_test.json"):
        PhraseCutDataset(phrasecut_root, "test")
    (phrasecut_root / "refer_miniv.json").write_text(json.dumps([{"task_id": "x"}]))
    with pytest.raises(DatasetError, match="lacks"):
        PhraseCutDataset(phrasecut_root, "miniv")
    (phrasecut_root / "images" / "22.jpg").unlink()
    ds = PhraseCutDataset(phrasecut_root, "val")
    with pytest.raises(DatasetError, match="22.jpg"):
        ds[2]


def test_eval_baselines_run_on_phrasecut(phrasecut_root: Path):
    from wsris.evaluation import run

    report = run(data=f"phrasecut:val@{phrasecut_root}", progress=False, echo=lambda *a: None)
    # "all objects" on image 11 is the 16-pixel union: IoU 1 for task a, 4/16 for task b;
    # on image 22 it is the target itself
    assert report.metrics["all_objects"]["mIoU"] == pytest.approx((1 + 4 / 16 + 1) / 3)
    assert set(report.by_kind) == {"verbose", "attribute", "name"}


def test_missing_images_are_found_before_evaluation(phrasecut_root: Path):
    from wsris.data.phrasecut import PhraseCutDataset
    from wsris.errors import DatasetError
    from wsris.evaluation import run

    assert PhraseCutDataset(phrasecut_root, "val").missing_images() == []
    (phrasecut_root / "images" / "22.jpg").unlink()
    missing = PhraseCutDataset(phrasecut_root, "val").missing_images()
    assert missing == [phrasecut_root / "images" / "22.jpg"]
    with pytest.raises(DatasetError, match="1 image file"):
        run(data=f"phrasecut:val@{phrasecut_root}", progress=False, echo=lambda *a: None)
    report = run(data=f"phrasecut:val@{phrasecut_root}", progress=False, echo=lambda *a: None,
                 on_error="skip")
    assert report.metrics["all_objects"]["n"] == 2  # image 11's two tasks, none scored 0
