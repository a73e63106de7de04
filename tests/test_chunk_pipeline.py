"""The chunk pipeline with the proposal module mocked (its own tests live elsewhere)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from chunk_helpers import text_batch, tiny_model

from wsris.errors import InvalidInputError
from wsris.methods.chunk.affinity import patch_affinity, refine_with_affinity
from wsris.methods.chunk.gradcam import compute_gradcam
from wsris.methods.chunk.pipeline import localize
from wsris.pipelines.base import LocalizationOutput


@pytest.fixture
def fake_proposals(monkeypatch):
    """Three fixed proposals at whatever size it is given; records its calls."""
    calls = {"generate": [], "select": []}
    mod = types.ModuleType("wsris.methods.chunk.proposals")

    def generate_proposals(image, max_proposals=100):
        calls["generate"].append((image.shape, max_proposals))
        h, w = image.shape[:2]
        props = np.zeros((3, h, w), dtype=bool)
        props[0, : h // 2] = True
        props[1, :, : w // 2] = True
        props[2] = True
        return props

    def select_proposal(proposals, score_map, tau):
        calls["select"].append((proposals.shape, score_map.shape, tau, score_map.copy()))
        binary = score_map >= tau
        inter = (proposals & binary).sum((1, 2))
        union = (proposals | binary).sum((1, 2))
        iou = inter / np.maximum(union, 1)
        best = int(np.argmax(iou))
        return (best, float(iou[best])) if iou[best] > 0 else (-1, 0.0)

    def select_proposal_by_mean(proposals, score_map, min_area):
        calls["select"].append((proposals.shape, score_map.shape, min_area, score_map.copy()))
        means = (proposals * score_map).sum((1, 2)) / proposals.sum((1, 2))
        means[proposals.sum((1, 2)) < min_area * score_map.size] = -1
        return int(np.argmax(means)), float(means.max())

    mod.generate_proposals = generate_proposals
    mod.select_proposal = select_proposal
    mod.select_proposal_by_mean = select_proposal_by_mean
    monkeypatch.setitem(sys.modules, "wsris.methods.chunk.proposals", mod)
    return calls


def _inputs(lengths=(3, 5, 2), hw=(600, 800)):
    model = tiny_model()
    pixels = torch.randn(1, 3, 32, 32)
    text = text_batch(list(lengths), max_len=max(lengths) + 2)
    image = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    return model, pixels, text, image


def test_all_stages(fake_proposals):
    model, pixels, text, image = _inputs()
    outs = localize(model, pixels, text, image, {"max_proposals": 7})
    assert len(outs) == 3 and all(isinstance(o, LocalizationOutput) for o in outs)
    # proposals once per image, at a working resolution with long side 384
    assert fake_proposals["generate"] == [((288, 384, 3), 7)]
    assert len(fake_proposals["select"]) == 3

    with torch.no_grad():
        vision = model.encode_image(pixels, attention_block=3)
    cam = compute_gradcam(model, vision.tokens, text.input_ids, text.attention_mask, layer=2)
    for t, (out, n) in enumerate(zip(outs, (3, 5, 2), strict=True)):
        st = out.stages
        assert st["word_maps"].shape == (n, 4, 4)
        assert st["words"] == text.tokens[t][1:]
        assert st["word_ids"] == list(range(n))
        torch.testing.assert_close(st["word_maps"], cam.maps[t, 1 : n + 1])
        torch.testing.assert_close(st["gradcam"], st["word_maps"].mean(0))
        expected = refine_with_affinity(st["gradcam"][None], patch_affinity(vision.attention))
        torch.testing.assert_close(st["affinity"], expected[0])
        torch.testing.assert_close(out.heatmap, st["affinity"])
        assert out.heatmap.dtype == torch.float32 and out.heatmap.device.type == "cpu"
        assert out.score == pytest.approx(float(cam.itm_logits[t].softmax(-1)[1]), abs=1e-6)
        prop = st["proposal"]
        assert prop["count"] == 3 and prop["size"] == (288, 384) and prop["tau"] == 0.3
        # the score map handed to select_proposal is the refined map, min-max to [0, 1]
        shape, score_shape, tau, score = fake_proposals["select"][t]
        assert score_shape == (288, 384) and score.min() == 0.0 and score.max() > 0.99
        if prop["index"] >= 0:
            assert out.mask.shape == (288, 384) and out.mask.dtype == bool
        else:
            assert out.mask is None


def test_stages_switch_off(fake_proposals):
    model, pixels, text, image = _inputs()
    only = localize(model, pixels, text, image, {"stages": ["gradcam"]})
    assert fake_proposals["generate"] == []
    for out in only:
        assert out.mask is None
        assert "affinity" not in out.stages and "proposal" not in out.stages
        torch.testing.assert_close(out.heatmap, out.stages["gradcam"])
    no_aff = localize(model, pixels, text, image, {"stages": ("gradcam", "proposals")})
    assert len(fake_proposals["generate"]) == 1
    for a, b in zip(only, no_aff, strict=True):
        torch.testing.assert_close(a.heatmap, b.heatmap)
        assert "proposal" in b.stages
    # gradcam cannot be switched off
    aff = localize(model, pixels, text, image, {"stages": ["affinity"]})
    assert "gradcam" in aff[0].stages and "affinity" in aff[0].stages


def test_no_overlapping_proposal_keeps_thresholded_map(fake_proposals, monkeypatch):
    mod = sys.modules["wsris.methods.chunk.proposals"]
    monkeypatch.setattr(mod, "select_proposal", lambda p, s, tau: (-1, 0.0))
    model, pixels, text, image = _inputs(lengths=(2,), hw=(100, 120))
    (out,) = localize(model, pixels, text, image, {})
    assert out.mask is None
    assert out.stages["proposal"]["index"] == -1
    assert fake_proposals["generate"][0][0] == (100, 120, 3)  # small images stay as they are


def test_average_with_cls_and_layers(fake_proposals):
    model, pixels, text, image = _inputs(lengths=(3,))
    opts = {"stages": ["gradcam"], "gradcam_layer": 3, "affinity_layer": 1}
    words = localize(model, pixels, text, image, opts)[0]
    upstream = localize(model, pixels, text, image, {**opts, "average": "tokens_with_cls"})[0]
    with torch.no_grad():
        image_tokens = model.encode_image(pixels).tokens
    cam = compute_gradcam(model, image_tokens, text.input_ids, text.attention_mask, layer=3)
    torch.testing.assert_close(words.heatmap, cam.maps[0, 1:4].mean(0))
    torch.testing.assert_close(upstream.heatmap, cam.maps[0, 0:4].mean(0))
    assert words.stages["gradcam_layer"] == 3


def test_bert_style_sep_is_not_a_word(fake_proposals):
    model, pixels, text, image = _inputs(lengths=(3,))
    # make the last real token a [SEP]: word_ids None there
    text.input_ids[0, 3] = 102
    text.tokens[0][3] = "[SEP]"
    text.word_ids[0][3] = None
    (out,) = localize(model, pixels, text, image, {"stages": ["gradcam"]})
    assert out.stages["words"] == text.tokens[0][1:3]
    torch.testing.assert_close(out.heatmap, out.stages["word_maps"].mean(0))


def test_runs_inside_inference_mode(fake_proposals):
    model, pixels, text, image = _inputs(lengths=(2, 3))
    ref = localize(model, pixels, text, image, {"stages": ["gradcam", "affinity"]})
    with torch.inference_mode():
        pixels_i, ids_i = pixels.clone(), text.input_ids.clone()
        text.input_ids = ids_i
        outs = localize(model, pixels_i, text, image, {"stages": ["gradcam", "affinity"]})
    for a, b in zip(ref, outs, strict=True):
        torch.testing.assert_close(a.heatmap, b.heatmap)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"stages": ["gradcam", "crf"]}, "unknown stage"),
        ({"gradcam_layer": 1}, "gradcam_layer"),
        ({"affinity_layer": 4}, "affinity_layer"),
        ({"proposal_tau": 1.5}, "proposal_tau"),
        ({"max_proposals": 0}, "max_proposals"),
        ({"average": "median"}, "average"),
    ],
)
def test_bad_options(fake_proposals, options, match):
    model, pixels, text, image = _inputs(lengths=(2,))
    with pytest.raises(InvalidInputError, match=match):
        localize(model, pixels, text, image, options)


def test_mean_rule_picks_the_hottest_proposal_and_says_so(fake_proposals):
    model, pixels, text, image = _inputs()
    outs = localize(model, pixels, text, image, {"proposal_select": "mean",
                                                 "proposal_min_area": 0.3})
    for t, out in enumerate(outs):
        _, _, min_area, score = fake_proposals["select"][t]
        assert min_area == 0.3
        h, w = score.shape
        means = [score[: h // 2].mean(), score[:, : w // 2].mean(), score.mean()]
        assert out.stages["proposal"]["rule"] == "mean"
        assert out.stages["proposal"]["index"] == int(np.argmax(means))
    with pytest.raises(InvalidInputError, match="proposal_select"):
        localize(model, pixels, text, image, {"proposal_select": "best"})
    with pytest.raises(InvalidInputError, match="proposal_min_area"):
        localize(model, pixels, text, image, {"proposal_min_area": 1.5})


def test_smooth_map_is_a_normalised_gaussian():
    from wsris.methods.chunk.pipeline import smooth_map

    delta = torch.zeros(1, 9, 9)
    delta[0, 4, 4] = 1.0
    assert torch.equal(smooth_map(delta, 0.0), delta)
    out = smooth_map(delta, 1.0)[0]
    assert out.sum() == pytest.approx(1.0, abs=1e-5)  # the kernel fits inside: mass kept
    # separable Gaussian: value at (dy, dx) proportional to exp(-(dy^2 + dx^2) / 2)
    assert out[4, 5] / out[4, 4] == pytest.approx(np.exp(-0.5), rel=1e-4)
    assert out[5, 5] / out[4, 4] == pytest.approx(np.exp(-1.0), rel=1e-4)
    assert torch.allclose(out, out.T) and int(out.argmax()) == 4 * 9 + 4
    model, pixels, text, image = _inputs()
    with pytest.raises(InvalidInputError, match="map_sigma"):
        localize(model, pixels, text, image, {"map_sigma": -1})
