"""The chunk method's L_ALBEF pieces: contrastive targets and hard-negative mining."""

from __future__ import annotations

import math

import pytest
import torch

from wsris.methods.chunk.objective import _labelled, _sample_rows, negative_weights
from wsris.training import TrainConfig
from wsris.training.objectives import build_objective

TINY = {
    "method": "chunk",
    "model": {"preset": "tiny", "architecture": {"image_size": 32}},
    "data": {"train": "shapes:train?image_size=32&length=16"},
    "loss": {"intra": 0.5, "inter": 3.0},
}


def test_sample_rows_never_draws_a_zero_weight_and_flags_empty_rows():
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 0.0]])
    for _ in range(50):
        picks = _sample_rows(w, gen)
        assert picks[0] == 1 and picks[1] in (0, 2) and picks[2] == -1


def test_itc_with_equal_similarities_is_log_of_the_batch():
    obj = build_objective(TrainConfig.from_dict(TINY), torch.device("cpu"))
    img = torch.nn.functional.normalize(torch.ones(4, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.ones(6, 8), dim=-1)
    index = torch.tensor([0, 0, 1, 2, 3, 3])
    itc, sim = obj._itc(img, txt, index)
    assert sim.shape == (6, 4)
    # every similarity equal: text->image is log 4; image->text spreads its target over
    # its own texts, so each image's term is log 6 as well: (log 4 + log 6) / 2
    assert math.isclose(float(itc.detach()), (math.log(4) + math.log(6)) / 2, rel_tol=1e-5)


def test_forward_reports_every_term_and_trains_through_the_chunk_losses():
    torch.manual_seed(0)
    obj = build_objective(TrainConfig.from_dict(TINY), torch.device("cpu"))
    data = obj.train_dataset()
    batch = obj.collate([data[i] for i in range(8)])
    obj.set_step(0)
    out = obj(batch)
    assert {"loss", "itc", "itm", "itm_acc", "intra", "inter"} <= set(out)
    expected = out["itc"] + out["itm"] + 0.5 * out["intra"] + 3.0 * out["inter"]
    assert torch.isclose(out["loss"].detach(), expected, atol=1e-5)
    out["loss"].backward()
    emb = obj.model.text_encoder.embeddings.word_embeddings.weight.grad
    assert emb is not None and emb.abs().sum() > 0


def test_semi_labelled_share_is_stable_per_sample():
    ids = [f"train/{i}/0" for i in range(2000)]
    a, b = _labelled(ids, 0.1), _labelled(list(reversed(ids)), 0.1)
    assert torch.equal(a, b.flip(0))  # depends on the sample, not its batch position
    assert 0.07 < float(a.float().mean()) < 0.13


def test_perturbed_twin_refers_to_no_object():
    from types import SimpleNamespace as Obj

    from wsris.methods.chunk.validation import perturb_colour

    objects = [Obj(shape="circle", colour="red"), Obj(shape="circle", colour="blue"),
               Obj(shape="square", colour="green")]
    colours = ["red", "blue", "green", "white"]
    twin = perturb_colour("the small red circle", objects, colours)
    # only green and white circles are absent; the twin names one of them
    assert twin in ("the small green circle", "the small white circle")
    assert perturb_colour("the circle", objects, colours) is None  # no colour word
    assert perturb_colour("red and blue circle", objects, colours) is None  # two colours


def test_pair_ranking_sees_a_model_that_is_calibrated_low(monkeypatch):
    """Positives at 0.3 and negatives at 0.2: accuracy at 0.5 reads chance, the pair
    ranking reads a perfect ranker."""
    from wsris.methods.chunk import validation as chunk_validation

    cfg = {**TINY, "data": {**TINY["data"], "val": "shapes:val?image_size=32&length=12"}}
    obj = build_objective(TrainConfig.from_dict(cfg), torch.device("cpu"))

    def scores(objective, pixels, texts):
        return torch.tensor([0.3] + [0.2] * (len(texts) - 1))

    monkeypatch.setattr(chunk_validation, "_itm_scores", scores)
    out = chunk_validation.matching_metrics(obj, limit=12)
    assert out["itm_acc_balanced"] == 0.5
    assert out["itm_pair_balanced"] == 1.0
    if "itm_pair_perturbed" in out:
        assert out["itm_acc_perturbed"] == 0.5 and out["itm_pair_perturbed"] == 1.0


def test_map_shape_statistics_count_area_and_isolated_regions(monkeypatch):
    """Every word's Grad-CAM is the same hand-made 4x4 map with two separate hot pixels
    (values 1 and 0.8, the rest 0): after min-max, 2 of 16 cells are above tau = 0.3 and
    every chunk map has exactly 2 isolated regions."""
    from wsris.methods.chunk import validation as chunk_validation
    from wsris.methods.chunk.gradcam import GradCamOutput

    cfg = {**TINY, "data": {**TINY["data"], "val": "shapes:val?image_size=32&length=6"}}
    obj = build_objective(TrainConfig.from_dict(cfg), torch.device("cpu"))
    grid = torch.zeros(4, 4)
    grid[0, 0], grid[3, 3] = 1.0, 0.8

    def fake_cam(model, img, input_ids, attention_mask, layer=None):
        t, length = input_ids.shape
        maps = grid.expand(t, length, 4, 4).clone()
        return GradCamOutput(maps=maps, itm_logits=torch.zeros(t, 2))

    monkeypatch.setattr(chunk_validation, "compute_gradcam", fake_cam)
    out = chunk_validation.matching_metrics(obj, limit=6)
    assert out["map_area"] == pytest.approx(2 / 16)
    assert out["chunk_regions"] == 2.0


def test_validation_without_spacy_leaves_out_only_chunk_regions(monkeypatch):
    """Where spaCy is missing (a GPU image), validation warns and reports every metric
    but the per-chunk region count, which needs noun chunks."""
    from wsris.errors import NlpModelError
    from wsris.methods.chunk import validation as chunk_validation

    cfg = {**TINY, "data": {**TINY["data"], "val": "shapes:val?image_size=32&length=4"}}
    obj = build_objective(TrainConfig.from_dict(cfg), torch.device("cpu"))

    def no_spacy():
        raise NlpModelError("spaCy is not installed")

    def must_not_run(*args, **kwargs):
        raise AssertionError("noun chunks asked for without spaCy")

    monkeypatch.setattr(chunk_validation, "load_nlp", no_spacy)
    monkeypatch.setattr(chunk_validation, "chunk_batch", must_not_run)
    with pytest.warns(UserWarning, match="chunk_regions left out"):
        out = chunk_validation.matching_metrics(obj, limit=4)
    assert math.isnan(out["chunk_regions"])
    assert 0.0 <= out["gradcam_pick"] <= 1.0 and 0.0 <= out["itm_pair_balanced"] <= 1.0


def test_loss_options_are_checked_when_the_objective_is_built():
    from wsris.errors import ManifestError

    for bad in ({"inter_reduction": "median"}, {"lambda1": 0.5}):
        cfg = {**TINY, "loss": {**TINY["loss"], **bad}}
        with pytest.raises(ManifestError):
            build_objective(TrainConfig.from_dict(cfg), torch.device("cpu"))
    cfg = {**TINY, "loss": {**TINY["loss"], "inter_reduction": "region"}}
    obj = build_objective(TrainConfig.from_dict(cfg), torch.device("cpu"))
    assert obj.weights["inter_reduction"] == "region"


def test_negative_weights_uniform_then_by_similarity():
    # 3 images; texts 0,1 of image 0, text 2 of image 1, text 3 of image 2
    index = torch.tensor([0, 0, 1, 2])
    sim = torch.tensor([[5.0, 1.0, 0.0], [5.0, 0.0, 2.0], [0.0, 5.0, 3.0], [1.0, 1.0, 5.0]])
    w_img, w_txt = negative_weights(sim, index, hard=False)
    assert torch.equal(w_img, torch.tensor([[0.0, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]]))
    # a text of image 0 never draws text 1 (also image 0) as its image's negative text
    assert torch.equal(w_txt[0], torch.tensor([0.0, 0, 1, 1]))
    assert torch.equal(w_txt[2], torch.tensor([1.0, 1, 0, 1]))
    w_img, _ = negative_weights(sim, index, hard=True)
    soft = torch.softmax(sim[1], 0)
    torch.testing.assert_close(w_img[1], torch.tensor([0.0, soft[1], soft[2]]))
    assert w_img[1, 2] > w_img[1, 1]  # the more similar image is the likelier negative
