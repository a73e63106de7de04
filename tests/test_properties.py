"""Property-based tests (Hypothesis): image decoding, text cleaning and tokenisation, and
REFER parsing hold their invariants on random inputs; the only exceptions are the typed
ones."""

from __future__ import annotations

import io
import json
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from wsris.errors import DatasetError, ImageError, TextError, TextWarning
from wsris.images import load_image
from wsris.text import MAX_TEXT_CHARS, Tokenizer, clean_albef, pre_caption

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------ image decoding

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64,
                          np.bool_])
SHAPES = st.tuples(st.integers(1, 9), st.integers(1, 9),
                   st.sampled_from([None, 1, 2, 3, 4])).map(
    lambda t: t[:2] if t[2] is None else t)


@SETTINGS
@given(hnp.arrays(DTYPES, SHAPES))
def test_any_array_is_rgb_at_its_size_or_an_image_error(array):
    try:
        out = load_image(array)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.shape == (*array.shape[:2], 3)
    assert out.flags["C_CONTIGUOUS"]


@SETTINGS
@given(hnp.arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_uint16_is_scaled_by_its_dtype(array):
    out = load_image(array)[..., 0].astype(np.int64)
    expected = np.floor(array.astype(np.float64) / 257.0 + 0.5).astype(np.int64)
    np.testing.assert_array_equal(out, expected)


@SETTINGS
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6),
                                       st.just(4))))
def test_rgba_composite_is_between_colour_and_white(rgba):
    out = load_image(rgba).astype(np.int64)
    rgb, alpha = rgba[..., :3].astype(np.int64), rgba[..., 3:].astype(np.int64)
    exact = (rgb * alpha + 255 * (255 - alpha)) / 255
    assert np.abs(out - exact).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(out[alpha[..., 0] == 255], rgb[alpha[..., 0] == 255])


MODES = st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK",
                         "YCbCr"])
FORMATS = {"1": "PNG", "L": "PNG", "LA": "PNG", "P": "PNG", "RGB": "PNG", "RGBA": "PNG",
           "I;16": "PNG", "I": "TIFF", "F": "TIFF", "CMYK": "TIFF", "YCbCr": "TIFF"}


@SETTINGS
@given(mode=MODES, w=st.integers(1, 12), h=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_image_files_of_every_mode_decode_to_rgb_at_their_size(mode, w, h, seed):
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "F":
        img = Image.fromarray(rng.random((h, w)).astype(np.float32))
    else:
        img = base.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=FORMATS[mode])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x.{FORMATS[mode].lower()}"
        path.write_bytes(buf.getvalue())
        out = load_image(path)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8


@SETTINGS
@given(data=st.binary(min_size=1, max_size=300), cut=st.integers(0, 400))
def test_corrupt_bytes_are_image_errors(data, cut):
    png = io.BytesIO()
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(png, format="PNG")
    with tempfile.TemporaryDirectory() as tmp:
        for blob in (data, png.getvalue()[:cut] + data, png.getvalue()[: cut % 60 + 1]):
            path = Path(tmp) / "c.png"
            path.write_bytes(blob)
            try:
                out = load_image(path)
            except ImageError:
                continue
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


# ------------------------------------------------------------------ text cleaning, tokens

TEXT = st.text(st.characters(codec="utf-8"), max_size=200) | st.text(
    st.sampled_from(list("abc XYZ,.'!?\"()*#:;~-/<person>\t\n")), max_size=120)
STRIPPED = set(",.'!?\"()*#:;~-/")


@SETTINGS
@given(TEXT, st.sampled_from([None, 3, 30]))
def test_pre_caption_invariants(text, max_words):
    once = pre_caption(text, max_words)
    assert not STRIPPED & set(once)
    assert "<person>" not in once
    assert once == once.strip(" ") and "  " not in once
    if max_words is not None:
        assert len(once.split(" ")) <= max_words
    assert pre_caption(once, max_words) == once  # idempotent
    assert clean_albef(text, max_words) == " ".join(once.split())


@SETTINGS
@given(TEXT, st.sampled_from(["albef", "bert"]), st.integers(3, 24))
def test_tokenizer_gives_a_valid_batch_or_a_text_error(text, style, max_length):
    tok = Tokenizer(style=style, max_length=max_length, max_words=30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            batch = tok([text, "a red one"])
        except TextError:
            return
    assert all(issubclass(w.category, TextWarning) for w in caught)
    assert batch.input_ids.shape[1] <= max_length
    assert batch.input_ids[0, 0].item() == 101  # [CLS]
    words = tok.words(text)
    wids = [w for w in batch.word_ids[0] if w is not None]
    assert wids and all(0 <= w < len(words) for w in wids)
    assert wids == sorted(wids)
    assert int(batch.attention_mask[0].sum()) == len(batch.tokens[0])


@SETTINGS
@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.integers(),
                                                                               max_size=2)))
def test_non_strings_are_text_errors(value):
    with pytest.raises(TextError):
        Tokenizer()(value)


def test_over_long_text_is_a_text_error():
    with pytest.raises(TextError, match="longer than"):
        Tokenizer().check("a" * (MAX_TEXT_CHARS + 1))


# ------------------------------------------------------------------------ REFER parsing

def _refer_mask(segm, h, w):
    from tests.test_refer import refer_api_mask

    if isinstance(segm, dict) and isinstance(segm["counts"], str):
        segm = {**segm, "counts": segm["counts"].encode("ascii")}
    return refer_api_mask({"segmentation": segm}, h, w)


@st.composite
def segmentations(draw, h, w):
    kind = draw(st.sampled_from(["polygon", "rle", "rle_list"]))
    if kind == "polygon":
        polys = []
        for _ in range(draw(st.integers(1, 3))):
            n = draw(st.integers(3, 8))
            coords = draw(st.lists(st.floats(-5, max(h, w) + 5, allow_nan=False,
                                             width=32), min_size=2 * n, max_size=2 * n))
            polys.append([round(c, 2) for c in coords])
        return polys
    from pycocotools import mask as coco_mask

    seed = draw(st.integers(0, 2**16))
    m = np.random.default_rng(seed).random((h, w)) < draw(st.floats(0, 1))
    if kind == "rle":
        enc = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
        return {"size": [h, w], "counts": enc["counts"].decode("ascii")}
    from wsris.data.masks import rle_encode

    return rle_encode(m, compress=False)


@st.composite
def refer_datasets(draw):
    images, anns, refs = [], [], []
    ann_id = 1
    for image_id in range(1, draw(st.integers(1, 3)) + 1):
        h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": h,
                       "width": w})
        for _ in range(draw(st.integers(1, 3))):
            anns.append({"id": ann_id, "image_id": image_id, "category_id": 1,
                         "segmentation": draw(segmentations(h, w))})
            refs.append({"ref_id": ann_id * 10, "ann_id": ann_id, "image_id": image_id,
                         "split": draw(st.sampled_from(["val", "val", "test"])),
                         "sentences": [{"sent_id": ann_id * 100 + k,
                                        "sent": draw(st.text(max_size=20))}
                                       for k in range(draw(st.integers(0, 3)))]})
            ann_id += 1
    return images, anns, refs


@SETTINGS
@given(refer_datasets())
def test_refer_datasets_load_with_official_masks(data):
    from wsris.data.refer import ReferDataset

    images, anns, refs = data
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "rc").mkdir()
        (root / "images").mkdir()
        for im in images:
            Image.fromarray(np.zeros((im["height"], im["width"], 3), np.uint8)).save(
                root / "images" / im["file_name"])
        (root / "rc" / "instances.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": []}))
        (root / "rc" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
        expected = [(r, s) for r in refs if r["split"] == "val" for s in r["sentences"]]
        if not any(r["split"] == "val" for r in refs):
            with pytest.raises(DatasetError, match="no refs with split"):
                ReferDataset(root, "rc", "unc", "val")
            return
        ds = ReferDataset(root, "rc", "unc", "val")
        assert len(ds) == len(expected)
        by_id = {a["id"]: a for a in anns}
        sizes = {im["id"]: (im["height"], im["width"]) for im in images}
        for i, (ref, sent) in enumerate(expected):
            sample = ds[i]
            h, w = sizes[ref["image_id"]]
            assert sample.text == sent["sent"] and sample.ref_id == ref["ref_id"]
            assert sample.sample_id == str(sent["sent_id"])
            assert sample.mask.shape == (h, w) and sample.image.shape == (h, w, 3)
            np.testing.assert_array_equal(
                sample.mask, _refer_mask(by_id[ref["ann_id"]]["segmentation"], h, w))


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.sampled_from(["size", "counts", "x"]), children, max_size=3),
    max_leaves=12,
)


@SETTINGS
@given(JUNK, st.integers(1, 8), st.integers(1, 8))
def test_malformed_segmentations_are_dataset_errors(segm, h, w):
    from wsris.data.masks import segmentation_to_mask

    assume(not isinstance(segm, bool))
    try:
        mask = segmentation_to_mask(segm, h, w)
    except DatasetError:
        return
    assert mask.shape == (h, w) and mask.dtype == bool
