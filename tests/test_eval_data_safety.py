"""Evaluation data is read as carefully as `segment` input: a pixel limit, file names
confined to the image folder, degenerate ground truth reported, and every malformed
REFER or PhraseCut structure a DatasetError (exit 9) whatever --on-error says."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_cli import run
from tests.test_refer import refer_root  # noqa: F401  (fixture)
from wsris.data.base import confined_path, read_rgb
from wsris.data.masks import rle_decode, segmentation_to_mask
from wsris.errors import DatasetError

IMAGES = Path("images") / "mscoco" / "images" / "train2014"
FIRST = "COCO_train2014_000000000001.png"


def read_instances(root: Path) -> dict:
    return json.loads((root / "refcoco+" / "instances.json").read_text())


def write_instances(root: Path, instances: dict) -> None:
    (root / "refcoco+" / "instances.json").write_text(json.dumps(instances))


def read_refs(root: Path) -> list:
    with open(root / "refcoco+" / "refs(unc).p", "rb") as f:
        return pickle.load(f)


def write_refs(root: Path, refs: list) -> None:
    with open(root / "refcoco+" / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)


def evaluate(root: Path, *extra: str):
    res = run("eval", "--data", f"refcoco+:unc:val@{root}", "--no-progress", *extra)
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header declares ``width`` x ``height`` (a
    decompression bomb as far as a decoder without a limit is concerned)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + width) * 4, 9)  # the first rows only
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(
        b"IEND", b"")


def test_a_dataset_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(20000, 20000))
    assert bomb.stat().st_size < 5000
    with pytest.raises(DatasetError, match="over the pixel limit of 64,000,000"):
        read_rgb(bomb)
    bomb.write_bytes(png_declaring(10000, 10000))  # over wsris's limit, under PIL's
    with pytest.raises(DatasetError, match="10000x10000 = 100,000,000 pixels, over the pixel"):
        read_rgb(bomb)
    with pytest.raises(DatasetError, match="over the pixel limit of 10$"):
        read_rgb(bomb, max_pixels=10)


def test_the_pixel_limit_in_eval_fails_or_skips_the_sample(refer_root):  # noqa: F811
    (refer_root / IMAGES / FIRST).write_bytes(png_declaring(20000, 20000))
    res = evaluate(refer_root)
    assert res.exit_code == 9 and "over the pixel limit" in res.output
    res = evaluate(refer_root, "--on-error", "skip")
    assert res.exit_code == 0, res.output
    assert "2 skipped" in res.output  # the two sentences of image 1; image 2 is scored


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd",
                                  "sub/../../outside.png", ""])
def test_confined_path_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(DatasetError):
        confined_path(tmp_path, name, "image 1")


def test_confined_path_keeps_names_inside(tmp_path):
    assert confined_path(tmp_path, "a/./b.png", "x") == tmp_path / "a" / "b.png"
    assert confined_path(tmp_path, "a/../b.png", "x") == tmp_path / "b.png"


def test_a_file_name_outside_the_image_folder_is_a_bad_sample(refer_root, tmp_path):  # noqa: F811
    secret = refer_root / "secret.png"  # outside the image folder, and a valid image
    shutil.copy(refer_root / IMAGES / FIRST, secret)
    instances = read_instances(refer_root)
    instances["images"][0]["file_name"] = "../../../../secret.png"
    write_instances(refer_root, instances)
    res = evaluate(refer_root)
    assert res.exit_code == 9 and "outside the image folder" in res.output, res.output
    res = evaluate(refer_root, "--on-error", "skip", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [s["sent_id"] for s in report["skipped"]] == [100, 101]
    assert all("outside the image folder" in s["error"] for s in report["skipped"])


@pytest.mark.parametrize("segmentation", [
    [[0, 0, 2, 2]],                       # a polygon of two points
    [],                                   # nothing at all
    [[50, 50, 60, 50, 60, 60, 50, 60]],   # entirely off the 8x6 image
])
def test_degenerate_ground_truth_is_a_bad_sample(refer_root, tmp_path, segmentation):  # noqa: F811
    instances = read_instances(refer_root)
    instances["annotations"][0]["segmentation"] = segmentation  # ann 10: ref 0's target
    write_instances(refer_root, instances)
    res = evaluate(refer_root)
    assert res.exit_code == 9 and "empty ground-truth mask" in res.output
    assert "ref 0, sentence 100" in res.output
    res = evaluate(refer_root, "--on-error", "skip", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["samples"] == 1 and len(report["skipped"]) == 2


def test_nothing_left_to_score_is_an_error_not_a_table_of_zeros(refer_root):  # noqa: F811
    instances = read_instances(refer_root)
    for ann in instances["annotations"]:
        ann["segmentation"] = []
    write_instances(refer_root, instances)
    res = evaluate(refer_root, "--on-error", "skip")
    assert res.exit_code == 9 and "all 3 samples were skipped" in res.output
    res = run("eval", "--data", "shapes:val?length=0", "--no-progress")
    assert res.exit_code == 3 and "length must be at least 1" in res.output


def test_bad_shapes_spec_options_are_one_line_errors():
    for spec, needle in [("shapes:val?bogus=1", "unknown option 'bogus'"),
                         ("shapes:val?length=abc", "must be an integer"),
                         ("shapes:val?scale=nan", "finite number"),
                         ("shapes:val?image_size=2.5", "must be an integer")]:
        res = run("eval", "--data", spec, "--no-progress")
        assert res.exit_code == 3 and needle in res.output, (spec, res.output)
        assert res.output.startswith("wsris: error: ")


def test_a_negative_rle_run_is_named_as_such():
    with pytest.raises(DatasetError, match="negative run") as err:
        rle_decode({"size": [128, 128], "counts": [16385, -1]})
    assert "sum to" not in str(err.value)
    with pytest.raises(DatasetError, match="negative run"):
        segmentation_to_mask({"size": [128, 128], "counts": [16385, -1]}, 128, 128)


# Every malformed structure, in both modes: exit 9, one line.

def _refs_not_dicts(refs, instances):
    refs[0] = ["not", "a", "ref"]


def _ref_without_ann_id(refs, instances):
    del refs[0]["ann_id"]


def _sentences_none(refs, instances):
    refs[0]["sentences"] = None


def _annotation_without_segmentation(refs, instances):
    del instances["annotations"][0]["segmentation"]


def _image_without_file_name(refs, instances):
    del instances["images"][0]["file_name"]


def _images_not_a_list(refs, instances):
    instances["images"] = {"1": "x"}


def _sentence_without_text(refs, instances):
    refs[1]["sentences"][0] = {"sent_id": 5}


MALFORMED = [_refs_not_dicts, _ref_without_ann_id, _sentences_none,
             _annotation_without_segmentation, _image_without_file_name, _images_not_a_list,
             _sentence_without_text]


@pytest.mark.parametrize("mode", ["fail", "skip"])
@pytest.mark.parametrize("damage", MALFORMED, ids=lambda f: f.__name__.strip("_"))
def test_malformed_refer_structures_exit_9(refer_root, damage, mode):  # noqa: F811
    refs, instances = read_refs(refer_root), read_instances(refer_root)
    damage(refs, instances)
    write_refs(refer_root, refs)
    write_instances(refer_root, instances)
    res = evaluate(refer_root, "--on-error", mode)
    assert res.exit_code == 9, res.output
    assert res.output.startswith("wsris: error: ") and len(res.output.splitlines()) == 1


def _phrasecut(root: Path, tasks) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "refer_val.json").write_text(json.dumps(tasks))
    return root


GOOD_TASK = {"task_id": "1__1", "image_id": 1, "phrase": "the dog",
             "Polygons": [[[[0, 0], [4, 0], [4, 4]]]], "phrase_structure": {"type": "name"}}


@pytest.mark.parametrize("mode", ["fail", "skip"])
@pytest.mark.parametrize("tasks", [
    {"not": "a list"}, ["a string"], [{**GOOD_TASK, "image_id": None}],
    [{**GOOD_TASK, "image_id": "abc"}], [{**GOOD_TASK, "phrase": 7}],
    [{**GOOD_TASK, "Polygons": None}], [{**GOOD_TASK, "Polygons": [[1, 2]]}],
    [{**GOOD_TASK, "phrase_structure": "name"}], [{"task_id": "x"}],
])
def test_malformed_phrasecut_structures_exit_9(tmp_path, tasks, mode):
    root = _phrasecut(tmp_path / "pc", tasks)
    res = run("eval", "--data", f"phrasecut:val@{root}", "--no-progress", "--on-error", mode)
    assert res.exit_code == 9, res.output
    assert res.output.startswith("wsris: error: ") and "Traceback" not in res.output


# A property test: random damage to the structures the loader reads.

NOT_AN_ID = st.one_of(st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
                      st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
                      st.floats(allow_nan=True).filter(lambda x: x != x or x % 1 != 0),
                      st.text(max_size=4).filter(lambda t: not t.strip().lstrip("+-")
                                                 .isdigit()))
NOT_A_LIST = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.booleans())
NOT_A_NAME = st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=1),
                       st.just(""))
NOT_A_SIZE = st.one_of(NOT_AN_ID, st.integers(max_value=0))
DELETED = object()


def _target(draw) -> tuple[str, tuple, object]:
    """(which file, path into it, the malformed value or DELETED)."""
    where = draw(st.sampled_from([
        ("refs", (0,), st.one_of(NOT_A_LIST, st.lists(st.integers(), max_size=2))),
        ("refs", (1, "ann_id"), NOT_AN_ID), ("refs", (0, "image_id"), NOT_AN_ID),
        ("refs", (0, "sentences"), NOT_A_LIST),
        ("refs", (1, "sentences", 0), NOT_A_LIST),
        ("instances", ("images",), NOT_A_LIST), ("instances", ("annotations",), NOT_A_LIST),
        ("instances", ("images", 0, "id"), NOT_AN_ID),
        ("instances", ("images", 1, "file_name"), NOT_A_NAME),
        ("instances", ("images", 0, "height"), NOT_A_SIZE),
        ("instances", ("images", 1, "width"), NOT_A_SIZE),
        ("instances", ("annotations", 2, "id"), NOT_AN_ID),
        ("instances", ("annotations", 0, "image_id"), NOT_AN_ID),
        ("instances", ("annotations", 1, "segmentation"),
         st.one_of(st.none(), st.integers(), st.text(max_size=3))),
    ]))
    file, path, values = where
    delete = path[-1] in ("ann_id", "image_id", "sentences", "id", "file_name", "height",
                          "width", "segmentation") and draw(st.booleans())
    return file, path, DELETED if delete else draw(values)


@st.composite
def damage(draw):
    return [_target(draw) for _ in range(draw(st.integers(1, 3)))]


def _apply(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    if value is DELETED:
        del tree[path[-1]]
    else:
        tree[path[-1]] = value


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(changes=damage(), mode=st.sampled_from(["fail", "skip"]))
def test_random_malformed_annotation_files_exit_9(refer_root, changes, mode):  # noqa: F811
    base = {"refs": read_refs(refer_root), "instances": read_instances(refer_root)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "refer"
        shutil.copytree(refer_root, root)
        files = copy.deepcopy(base)
        for file, path, value in changes:
            try:
                _apply(files[file], path, value)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier change removed what this one would damage
        write_refs(root, files["refs"])
        write_instances(root, files["instances"])
        res = evaluate(root, "--on-error", mode)
        assert res.exit_code == 9, (changes, res.output)
        assert res.output.startswith("wsris: error: ") and len(res.output.splitlines()) == 1
