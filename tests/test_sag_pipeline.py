"""The SaG pipeline: slots once per image, all texts fused in one batch, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsris.errors import InvalidInputError
from wsris.methods.sag.model import SagConfig, SagModel
from wsris.methods.sag.pipeline import localize
from wsris.methods.sag.slots import combine_slot_maps
from wsris.pipelines.base import LocalizationOutput, TextBatch


def micro(**kw) -> SagConfig:
    return SagConfig.tiny(text_vocab_size=100, **kw)


@pytest.fixture(scope="module")
def model() -> SagModel:
    torch.manual_seed(0)
    return SagModel(micro()).eval()


def batch(n: int = 3) -> TextBatch:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (n, 6), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    mask = torch.ones_like(ids)
    return TextBatch(
        [f"text {i}" for i in range(n)], ids, mask, [[] for _ in range(n)], [[] for _ in range(n)]
    )


PIXELS = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
IMAGE = np.zeros((50, 70, 3), dtype=np.uint8)


def test_outputs_and_stages(model: SagModel) -> None:
    outs = localize(model, PIXELS, batch(3), IMAGE, {})
    assert len(outs) == 3 and all(isinstance(o, LocalizationOutput) for o in outs)
    k = model.config.num_slots
    for o in outs:
        assert o.heatmap.shape == (16, 16) and o.heatmap.dtype == torch.float32
        assert o.heatmap.device.type == "cpu" and o.mask is None
        assert o.stages["a_slot"].shape == (k, 16, 16)
        assert o.stages["a_fuse"].shape == (k,)
        assert torch.allclose(o.stages["a_fuse"].sum(), torch.tensor(1.0), atol=1e-5)
        want = combine_slot_maps(o.stages["a_slot"], o.stages["a_fuse"], "product")
        assert torch.allclose(o.heatmap, want, atol=1e-6)
        assert o.stages["slot_init"] == "sample" and o.stages["combine"] == "product"
        assert -1.0 <= o.score <= 1.0
    assert outs[0].stages["a_slot"] is outs[1].stages["a_slot"]  # one image, one A^slot
    assert not torch.equal(outs[0].stages["a_fuse"], outs[1].stages["a_fuse"])


def test_each_text_matches_a_run_on_its_own(model: SagModel) -> None:
    b = batch(3)
    together = localize(model, PIXELS, b, IMAGE, {})
    alone = localize(
        model,
        PIXELS,
        TextBatch(b.texts[1:2], b.input_ids[1:2], b.attention_mask[1:2], [[]], [[]]),
        IMAGE,
        {},
    )
    assert torch.allclose(together[1].heatmap, alone[0].heatmap, atol=1e-6)


def test_slots_once_and_one_fusion_batch(model: SagModel, monkeypatch) -> None:
    calls = {"encode_image": 0, "discover": 0, "fuse": 0, "fuse_texts": []}
    orig_img, orig_disc, orig_fuse = model.encode_image, model.discover, model.fuse

    def encode_image(x):
        calls["encode_image"] += 1
        return orig_img(x)

    def discover(*a, **kw):
        calls["discover"] += 1
        return orig_disc(*a, **kw)

    def fuse(slots, text, mask=None):
        calls["fuse"] += 1
        calls["fuse_texts"].append(text.shape[0])
        return orig_fuse(slots, text, mask)

    monkeypatch.setattr(model, "encode_image", encode_image)
    monkeypatch.setattr(model, "discover", discover)
    monkeypatch.setattr(model, "fuse", fuse)
    localize(model, PIXELS, batch(5), IMAGE, {"slot_init": "sample", "num_samples": 3})
    assert calls == {"encode_image": 1, "discover": 1, "fuse": 1, "fuse_texts": [5]}


def test_combine_variants(model: SagModel) -> None:
    b = batch(2)
    base = localize(model, PIXELS, b, IMAGE, {})
    for mode in ("max", "min", "avg"):
        outs = localize(model, PIXELS, b, IMAGE, {"combine": mode})
        for o, ref in zip(outs, base, strict=True):
            a_slot, a_fuse = ref.stages["a_slot"], ref.stages["a_fuse"]
            want = {
                "max": a_slot[int(a_fuse.argmax())],
                "min": a_slot[int(a_fuse.argmin())],
                "avg": a_slot.mean(0),
            }[mode]
            assert torch.allclose(o.heatmap, want, atol=1e-6)


def test_deterministic_slot_inits(model: SagModel) -> None:
    b = batch(2)
    m1 = localize(model, PIXELS, b, IMAGE, {"slot_init": "mean"})
    m2 = localize(model, PIXELS, b, IMAGE, {"slot_init": "mean", "num_samples": 4})
    assert torch.equal(m1[0].heatmap, m2[0].heatmap) and m2[0].stages["num_samples"] == 1
    opts = {"slot_init": "sample", "num_samples": 3, "seed": 11}
    s1 = localize(model, PIXELS, b, IMAGE, opts)
    s2 = localize(model, PIXELS, b, IMAGE, opts)
    s3 = localize(model, PIXELS, b, IMAGE, {**opts, "seed": 12})
    assert torch.equal(s1[0].heatmap, s2[0].heatmap)
    assert not torch.allclose(s1[0].heatmap, s3[0].heatmap)
    # the map is the average of the per-draw maps; stages keep every draw
    st = s1[1].stages
    assert st["a_slot_samples"].shape == (3, model.config.num_slots, 16, 16)
    per_draw = [
        combine_slot_maps(st["a_slot_samples"][i], st["a_fuse_samples"][i]) for i in range(3)
    ]
    assert torch.allclose(s1[1].heatmap, torch.stack(per_draw).mean(0), atol=1e-6)
    assert torch.equal(st["a_slot"], st["a_slot_samples"][0])


def test_bad_options(model: SagModel) -> None:
    for opts in ({"combine": "median"}, {"slot_init": "zero"}, {"num_samples": 0}, {"seed": "x"}):
        with pytest.raises(InvalidInputError):
            localize(model, PIXELS, batch(1), IMAGE, opts)
    rnd = SagModel(micro(slot_type="random")).eval()
    with pytest.raises(InvalidInputError, match="random"):
        localize(rnd, PIXELS, batch(1), IMAGE, {"slot_init": "mean"})
    assert len(localize(rnd, PIXELS, batch(1), IMAGE, {"slot_init": "sample"})) == 1


def test_through_the_segmenter() -> None:
    """End to end through ``wsris.api.Segmenter`` with the real WordPiece tokenizer."""
    from wsris.api import Segmenter
    from wsris.methods.sag.convert import saved_config

    torch.manual_seed(0)
    cfg = SagConfig.tiny()
    seg = Segmenter(SagModel(cfg), saved_config(cfg), name="tiny-sag", device="cpu")
    rgb = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    results = seg.segment(rgb, ["the red circle", "a blue square on the left"])
    assert len(results) == 2
    for r in results:
        assert r.mask.shape == (40, 52) and r.heatmap.shape == (40, 52)
        assert r.heatmap.min() >= 0 and r.heatmap.max() <= 1
        assert r.stages["a_slot"].shape == (cfg.num_slots, 16, 16)
    one = seg.segment(rgb, "the red circle", combine="max")
    assert one.stages["combine"] == "max"
