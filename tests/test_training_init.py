"""Pretrained starting points of the training recipes (``model.init``)."""

from __future__ import annotations

import pytest
import torch

from wsris.errors import ManifestError, WeightsMismatchError, WeightsNotAvailableError
from wsris.methods.sag.model import SagConfig, SagModel, build_vit
from wsris.training import warm_start as init_mod


def _tiny_sag(**kw) -> SagModel:
    torch.manual_seed(0)
    return SagModel(SagConfig.tiny(stem="patch", **kw))


def test_timm_weights_load_into_the_sag_vit(monkeypatch):
    model = _tiny_sag()
    # a "pretrained" timm ViT of the same sizes, plus a classifier head that must be dropped
    donor = build_vit(model.config)
    with torch.no_grad():
        for p in donor.parameters():
            p.normal_()
    weights = dict(donor.state_dict())
    weights["head.weight"] = torch.zeros(10, model.config.vision_width)
    monkeypatch.setattr(init_mod, "timm_state_dict", lambda name: weights)
    init_mod.initialise(model, {"image_encoder": "timm:some_vit"})
    for key, value in donor.state_dict().items():
        assert torch.equal(model.image_encoder.state_dict()[key], value), key


def test_timm_weights_of_another_size_are_refused(monkeypatch):
    model = _tiny_sag()
    other = build_vit(SagConfig.tiny(stem="patch", vision_width=32, vision_heads=2))
    monkeypatch.setattr(init_mod, "timm_state_dict", lambda name: other.state_dict())
    with pytest.raises(WeightsMismatchError):
        init_mod.initialise(model, {"image_encoder": "timm:some_vit"})


def test_hf_bert_from_a_local_folder(tmp_path):
    from transformers import BertConfig, BertModel

    model = _tiny_sag()
    c = model.config
    bert = BertModel(
        BertConfig(
            vocab_size=model.text_encoder.embeddings.word_embeddings.num_embeddings,
            hidden_size=c.text_width,
            num_hidden_layers=c.text_layers,
            num_attention_heads=c.text_heads,
            intermediate_size=c.text_intermediate,
            max_position_embeddings=c.text_max_positions,
        )
    )
    bert.save_pretrained(tmp_path)
    init_mod.initialise(model, {"text_encoder": f"hf:{tmp_path}"})
    ours = model.text_encoder.embeddings.word_embeddings.weight
    assert torch.equal(ours, bert.embeddings.word_embeddings.weight)


def test_missing_hub_weights_while_offline_raise_a_typed_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsNotAvailableError, match="not-a-cached-model"):
        init_mod.hf_bert_state_dict("wsris-test/not-a-cached-model")


@pytest.mark.parametrize(
    "init",
    [{"text_encoder": "bert"}, {"image_encoder": "vit_small"}, {"vision": "timm:x"}],
)
def test_bad_init_options_are_refused(init):
    with pytest.raises(ManifestError):
        init_mod.initialise(_tiny_sag(), init)


def test_a_shipped_model_name_is_a_starting_checkpoint():
    import wsris
    from wsris.registry import build_model

    shipped = wsris.load("albef-chunk-shapes", device="cpu")
    architecture = shipped.config["architecture"]
    torch.manual_seed(1)
    model = build_model("chunk", architecture)
    init_mod.initialise(model, {"checkpoint": "albef-chunk-shapes"})
    for key, value in shipped.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_an_unknown_starting_checkpoint_is_a_typed_error(tmp_path):
    from wsris.errors import UnknownModelError

    with pytest.raises(UnknownModelError):
        init_mod.initialise(_tiny_sag(), {"checkpoint": "no-such-model"})
    with pytest.raises(ManifestError, match="not a folder"):
        init_mod.initialise(_tiny_sag(), {"checkpoint": str(tmp_path / "missing")})


def _saved(model, folder):
    from safetensors.torch import save_model

    folder.mkdir()
    save_model(model, str(folder / "model.safetensors"))
    return folder


def test_checkpoint_skip_keeps_the_named_parts_fresh_and_loads_the_rest(tmp_path):
    from wsris.errors import WeightsMismatchError

    donor = _tiny_sag(decoder_mixing="attention")
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(1.0)  # unlike any fresh initialisation
    folder = _saved(donor, tmp_path / "donor")
    # the alpha decoder has one more output channel: a strict load must refuse it
    with pytest.raises(WeightsMismatchError):
        init_mod.initialise(_tiny_sag(decoder_mixing="alpha"), {"checkpoint": str(folder)})
    model = _tiny_sag(decoder_mixing="alpha")
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    init_mod.initialise(model, {"checkpoint": str(folder), "checkpoint_skip": ["decoder."]})
    loaded = model.state_dict()
    decoder_keys = [k for k in loaded if k.startswith("decoder.")]
    assert decoder_keys
    for key in decoder_keys:
        assert torch.equal(loaded[key], fresh[key]), key
    others = [k for k in loaded if not k.startswith("decoder.")]
    for key in others:
        assert torch.equal(loaded[key], donor.state_dict()[key]), key


@pytest.mark.parametrize(
    "init, match",
    [({"checkpoint_skip": ["decoder."]}, "needs init.checkpoint"),
     ({"checkpoint": "DONOR", "checkpoint_skip": "decoder."}, "list of name prefixes"),
     ({"checkpoint": "DONOR", "checkpoint_skip": ["no_such_part."]}, "name no tensor")],
)
def test_bad_checkpoint_skip_is_refused(tmp_path, init, match):
    folder = _saved(_tiny_sag(), tmp_path / "donor")
    init = {k: (str(folder) if v == "DONOR" else v) for k, v in init.items()}
    with pytest.raises(ManifestError, match=match):
        init_mod.initialise(_tiny_sag(), init)


def test_checkpoint_skip_still_refuses_other_mismatches(tmp_path):
    from wsris.errors import WeightsMismatchError

    folder = _saved(_tiny_sag(dim=32), tmp_path / "donor")
    with pytest.raises(WeightsMismatchError):
        init_mod.initialise(_tiny_sag(),
                            {"checkpoint": str(folder), "checkpoint_skip": ["decoder."]})
