"""Stored frozen-stem features: the same step either way, keyed to the stem, refused when
damaged."""

from __future__ import annotations

import pytest
import torch

from wsris.errors import DatasetError
from wsris.training import TrainConfig
from wsris.training.objectives import build_objective
from wsris.training.stem_cache import stem_features_for


def _recipe(folder, frozen: bool = True, **loss) -> dict:
    return {
        "method": "chunk",
        "model": {"preset": "tiny",
                  "architecture": {"image_size": 128, "patch_size": 8,
                                   "stem": "efficientnet_lite0", "stem_frozen": frozen},
                  "init": {"image_stem": "efficientnet_lite0"}},
        "data": {"train": f"shapes:train?length=6&cache={folder}"},
        "loss": loss,
    }


def _objective(folder, **kw):
    torch.manual_seed(0)
    return build_objective(TrainConfig.from_dict(_recipe(folder, **kw)), torch.device("cpu"))


def _step(obj, batch) -> tuple[dict, dict]:
    obj.set_step(0)
    torch.manual_seed(1)  # the ITM negatives are drawn at random
    out = obj(batch)
    obj.model.zero_grad(set_to_none=True)
    out["loss"].backward()
    grads = {k: p.grad.clone() for k, p in obj.model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


def test_stored_features_equal_the_stem_and_give_the_same_step(tmp_path):
    obj = _objective(tmp_path / "c")
    data = obj.train_dataset()
    samples = [data[i] for i in (0, 1, 4, 5, 8, 9)]
    stored = obj.collate(samples, data)
    assert stored.stem_features is not None and stored.stem_features.shape == (3, 40, 16, 16)
    with torch.no_grad():
        live = obj.frozen_stem()(stored.pixel_values)
    torch.testing.assert_close(stored.stem_features, live, atol=1e-4, rtol=1e-4)

    plain = obj.collate(samples)  # no dataset given: the stem runs in the step
    assert plain.stem_features is None
    out_s, grads_s = _step(obj, stored)
    out_p, grads_p = _step(obj, plain)
    for key in ("loss", "itc", "itm"):
        torch.testing.assert_close(out_s[key], out_p[key], atol=1e-5, rtol=1e-5)
    assert grads_s.keys() == grads_p.keys()
    assert not any(k.startswith("visual_encoder.patch_embed.backbone") for k in grads_s)
    assert "visual_encoder.patch_embed.proj.0.weight" in grads_s
    for key in grads_s:
        torch.testing.assert_close(grads_s[key], grads_p[key], atol=1e-4, rtol=1e-4)


def test_features_are_written_once_and_keyed_to_the_stem(tmp_path, monkeypatch):
    obj = _objective(tmp_path / "c")
    data = obj.train_dataset()
    stem = obj.frozen_stem()
    first = stem_features_for(data, stem, obj.collator.preprocessing, progress=False)
    files = sorted(p.name for p in (tmp_path / "c").glob("stem-*"))
    assert len(files) == 2  # the array and its record

    import wsris.training.stem_cache as stem_cache

    def no_recompute(*args, **kwargs):
        raise AssertionError("features were computed again")

    monkeypatch.setattr(stem_cache, "_compute", no_recompute)
    again = stem_features_for(data, stem, obj.collator.preprocessing, progress=False)
    assert torch.equal(again[[0, 5]], first[[0, 5]])
    monkeypatch.undo()

    with torch.no_grad():
        stem[0].weight.mul_(0.5)  # other weights: another file, never the stale one
    other = stem_features_for(data, stem, obj.collator.preprocessing, progress=False)
    assert len(list((tmp_path / "c").glob("stem-*"))) == 4
    assert not torch.allclose(other[[0]], first[[0]])


def test_a_truncated_feature_file_is_refused(tmp_path):
    obj = _objective(tmp_path / "c")
    data = obj.train_dataset()
    stem_features_for(data, obj.frozen_stem(), obj.collator.preprocessing, progress=False)
    array = next((tmp_path / "c").glob("stem-*.f32"))
    array.write_bytes(array.read_bytes()[:100])
    with pytest.raises(DatasetError, match="truncated"):
        stem_features_for(data, obj.frozen_stem(), obj.collator.preprocessing, progress=False)


def test_nothing_is_stored_for_a_trainable_stem_or_rendered_data(tmp_path):
    obj = _objective(tmp_path / "c", frozen=False)
    data = obj.train_dataset()
    assert obj.collate([data[0]], data).stem_features is None
    assert not list((tmp_path / "c").glob("stem-*"))

    rendered = TrainConfig.from_dict({**_recipe(tmp_path / "c"),
                                      "data": {"train": "shapes:train?length=4"}})
    obj = build_objective(rendered, torch.device("cpu"))
    data = obj.train_dataset()
    assert obj.collate([data[0]], data).stem_features is None
