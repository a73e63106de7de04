"""Aspect-preserving preprocessing (``preprocessing.resize: pad``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import wsris
from wsris.blocks.maps import minmax
from wsris.errors import InvalidInputError
from wsris.images import pad_to_square, to_model_input


def test_pad_to_square_repeats_edges_and_centres():
    a = np.arange(8, dtype=np.uint8).reshape(2, 4)
    padded, (top, left) = pad_to_square(a)
    assert padded.shape == (4, 4) and (top, left) == (1, 0)
    assert np.array_equal(padded[1:3], a)
    assert np.array_equal(padded[0], a[0]) and np.array_equal(padded[3], a[1])
    tall = np.zeros((5, 2, 3), np.uint8)
    tall[:, 1] = 9
    p, (top, left) = pad_to_square(tall)
    assert p.shape == (5, 5, 3) and (top, left) == (0, 1)
    assert (p[:, 0] == 0).all() and (p[:, 3:] == 9).all()
    square = np.ones((3, 3), np.uint8)
    assert pad_to_square(square)[0] is square


PRE = {"size": [16, 16], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}


def test_model_input_pads_before_resizing_and_squash_stays_the_default():
    img = np.random.default_rng(0).integers(0, 255, (12, 30, 3), dtype=np.uint8)
    padded = to_model_input(img, {**PRE, "resize": "pad"})
    manual = to_model_input(pad_to_square(img)[0], PRE)
    assert torch.equal(padded, manual)
    assert torch.equal(to_model_input(img, PRE), to_model_input(img, {**PRE, "resize": "squash"}))
    with pytest.raises(InvalidInputError, match="resize"):
        to_model_input(img, {**PRE, "resize": "crop"})


@pytest.fixture(scope="module")
def scene_wide():
    from tests.test_api import scene

    return scene()  # 45 x 60


def test_padded_segmentation_is_the_padded_image_cut_back(tiny_folder, scene_wide):
    squash = wsris.load(tiny_folder, device="cpu")
    pad = wsris.load(tiny_folder, device="cpu")
    pad.config = {**copy.deepcopy(pad.config)}
    pad.config["preprocessing"] = {**pad.config["preprocessing"], "resize": "pad"}
    h, w = scene_wide.shape[:2]
    r = pad.segment(scene_wide, "the red square")
    assert r.mask.shape == r.heatmap.shape == (h, w)
    big, (top, left) = pad_to_square(scene_wide)
    ref = squash.segment(big, "the red square")
    expected = minmax(torch.from_numpy(ref.heatmap[top:top + h, left:left + w])).numpy()
    np.testing.assert_allclose(r.heatmap, expected, atol=1e-6)
    assert np.array_equal(r.mask, r.heatmap >= r.threshold)
    again = pad.segment(pad.encode(scene_wide), "the red square")
    assert np.array_equal(again.mask, r.mask)
    # squash (the old behaviour) also answers at the original size
    assert squash.segment(scene_wide, "the red square").mask.shape == (h, w)


def test_training_masks_are_padded_like_their_images():
    from wsris.data.base import RefSample
    from wsris.text import Tokenizer
    from wsris.training.data import PairCollator

    img = np.zeros((8, 16, 3), np.uint8)
    mask = np.zeros((8, 16), bool)
    mask[:, :8] = True  # the left half
    sample = RefSample(sample_id="train/0/0", image_id=0, image=img, text="the red circle",
                       mask=mask, object_masks=[mask], kind="attribute")
    batch = PairCollator(Tokenizer("bert", 16), {**PRE, "resize": "pad"})([sample])
    m = batch.masks[0].numpy()
    # 8 x 16 sits in rows 4-11 of a 16 x 16 square
    assert not m[:4].any() and not m[12:].any()
    assert m[4:12, :8].all() and not m[4:12, 8:].any()
