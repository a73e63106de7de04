"""``Segmenter.encode``: an image encoded once, segmented with many texts, same results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsris
from tests.test_api import scene
from wsris.api import EncodedImage
from wsris.errors import InvalidInputError

TEXTS = ["the red square", "blue rectangle on the right", "red"]


def assert_same(a, b) -> None:
    assert a.text == b.text and a.threshold == b.threshold
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    assert a.score == b.score
    assert a.stages.keys() == b.stages.keys()
    for key, value in a.stages.items():
        other = b.stages[key]
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other), key
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            # per-draw maps of a split-slot model (draws may differ in entity count)
            assert len(value) == len(other), key
            assert all(torch.equal(x, y) for x, y in zip(value, other, strict=True)), key
        else:
            assert value == other, key


def count_calls(monkeypatch, obj, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


@pytest.mark.filterwarnings("ignore::wsris.domain.DomainWarning")  # off-domain scene
@pytest.mark.parametrize("model", ["albef-chunk-shapes", "sag-shapes", "tiny"])
def test_encoded_image_gives_identical_results(model, tiny_folder):
    seg = wsris.load(tiny_folder if model == "tiny" else model, device="cpu")
    image = scene()
    encoded = seg.encode(image)
    assert isinstance(encoded, EncodedImage) and encoded.size == (45, 60)
    for text in TEXTS:  # one phrase at a time, as an interactive user asks
        assert_same(seg.segment(encoded, text), seg.segment(image, text))
    # Several texts at once batch the text side, with the same batch as a raw image.
    for got, want in zip(seg.segment(encoded, TEXTS), seg.segment(image, TEXTS), strict=True):
        assert_same(got, want)


@pytest.mark.filterwarnings("ignore::wsris.domain.DomainWarning")  # off-domain scene
def test_chunk_image_side_runs_once_per_option_set(monkeypatch):
    seg = wsris.load("albef-chunk-shapes", device="cpu")
    from wsris.methods.chunk import proposals

    encodes = count_calls(monkeypatch, seg.model, "encode_image")
    proposed = count_calls(monkeypatch, proposals, "generate_proposals")
    encoded = seg.encode(scene())
    assert (len(encodes), len(proposed)) == (1, 1)
    for text in TEXTS:
        seg.segment(encoded, text)
    assert (len(encodes), len(proposed)) == (1, 1)
    # Other image-side options are computed on first use, kept, and still match.
    # (the bundled model has affinity off: switching it on needs the block's attention)
    extra = {"stages": ("gradcam", "affinity", "proposals"), "affinity_layer": 0}
    got = seg.segment(encoded, "red", **extra)
    assert len(encodes) == 2
    seg.segment(encoded, "blue", **extra)
    assert len(encodes) == 2
    assert_same(got, seg.segment(scene(), "red", **extra))
    # Grad-CAM alone needs no attention: any cached encoding serves.
    before = len(encodes)
    seg.segment(encoded, "red", stages=("gradcam",))
    assert len(encodes) == before + 0


def test_sag_slots_are_discovered_once_per_seed(monkeypatch, tiny_folder):
    seg = wsris.load(tiny_folder, device="cpu")
    slots = count_calls(monkeypatch, seg.model, "encode_slots")
    encoded = seg.encode(scene())
    for text in TEXTS:
        seg.segment(encoded, text)
    assert len(slots) == 1
    got = seg.segment(encoded, "red", seed=3)
    assert len(slots) == 2
    assert_same(got, seg.segment(scene(), "red", seed=3))
    # The default seed is still the one encoded first.
    assert_same(seg.segment(encoded, "red"), seg.segment(scene(), "red"))


@pytest.mark.filterwarnings("ignore::wsris.domain.DomainWarning")  # off-domain scene
def test_encoded_image_survives_inference_mode():
    seg = wsris.load("albef-chunk-shapes", device="cpu")
    with torch.inference_mode():
        encoded = seg.encode(scene())
        got = seg.segment(encoded, "red")
    assert_same(got, seg.segment(scene(), "red"))


def test_encoded_image_belongs_to_its_segmenter(tiny_folder):
    a = wsris.load(tiny_folder, device="cpu")
    b = wsris.load(tiny_folder, device="cpu")
    encoded = a.encode(scene())
    with pytest.raises(InvalidInputError, match="another Segmenter"):
        b.segment(encoded, "red")
    with pytest.raises(InvalidInputError, match="unknown option"):
        a.encode(scene(), no_such_option=1)
