"""Fidelity to the official SaG code: the files its training writes, the constant of its
slot attention, its text limit and its slots (docs/fidelity.md)."""

from __future__ import annotations

import argparse
import datetime
import fractions
import json
import math
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from sag_official_layout import (
    ITERS,
    KG,
    official_args,
    official_state_dict,
    save_like_official,
)

import wsris
from wsris.cli import main
from wsris.errors import InvalidInputError, TextWarning, WeightsMismatchError
from wsris.methods.sag.convert import convert_sag
from wsris.methods.sag.convert_cli import sag_command
from wsris.methods.sag.layers import SlotAttentionBlock
from wsris.text import Tokenizer

BERT_VOCAB = 30522  # for models that tokenize real text


def _config(out: Path) -> dict:
    return json.loads((out / "config.json").read_text())


@pytest.mark.parametrize("numpy1", [False, True], ids=["numpy2-scalar", "numpy1-scalar"])
def test_a_file_written_like_save_ckpt_converts_with_its_args(tmp_path, numpy1):
    src = save_like_official(
        tmp_path / "model_best.pth.tar",
        official_state_dict(),
        official_args(txt_l2=True, pseudo_threshold=0.4),
        numpy1=numpy1,
    )
    core = "numpy.core" if numpy1 else "numpy._core"
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(str(src))) == {
        "argparse.Namespace", "numpy.dtype", f"{core}.multiarray.scalar"}
    out = convert_sag(src, tmp_path / "out")  # nothing given: every setting from args
    config = _config(out)
    arch, source = config["architecture"], config["source"]
    assert (arch["num_groups"], arch["slots_per_group"], arch["slot_type"]) == (KG, 3, "entity")
    assert arch["image_size"] == 64 and arch["iterations"] == ITERS
    # heads are in no shape: 16 ViT heads (not the assumed width / 64 = 1), 2 elsewhere
    assert (arch["vision_heads"], arch["agg_heads"], arch["interaction_heads"],
            arch["fusion_heads"]) == (16, 2, 2, 2)
    assert arch["text_norm"] == "l2" and config["inference"]["threshold"] == 0.4
    assert source["assumed"] == [] and source["has_args"] is True
    assert source["settings"]["num_slots"] == "args.img_num_embeds"
    assert source["settings"]["vision_heads"] == "args.img_backbone"
    assert source["val_iou"] == pytest.approx(64.0) and source["epoch"] == 7
    # the allowance does not outlive the conversion
    with pytest.raises(Exception, match="weights_only"):
        torch.load(src, weights_only=True)


def test_the_cli_says_what_it_read_and_what_it_assumed(tmp_path):
    with_args = save_like_official(tmp_path / "a.pth.tar", official_state_dict(), official_args())
    res = CliRunner().invoke(sag_command, [str(with_args), str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "args.img_num_embeds" in res.output and "assumed" not in res.output
    bare = save_like_official(tmp_path / "b.pth.tar", official_state_dict())
    res = CliRunner().invoke(sag_command, [str(bare), str(tmp_path / "b"), "--image-size", "64"])
    assert res.exit_code == 0, res.output
    assumed = next(line for line in res.output.splitlines() if line.startswith("assumed"))
    assert "num_slots" in assumed and "agg_heads" in assumed and "image_size" not in assumed


@pytest.mark.parametrize(
    "extra",
    [
        {"args": types.SimpleNamespace(img_num_embeds=6)},
        {"iou": fractions.Fraction(1, 3)},
        {"args": argparse.Namespace(when=datetime.date(2023, 1, 1))},
    ],
    ids=["other-namespace", "fraction", "date-in-args"],
)
def test_a_pickle_with_any_other_global_is_refused(tmp_path, extra):
    extra = {"args": official_args(), **extra}
    src = save_like_official(tmp_path / "x.pth.tar", official_state_dict(), **extra)
    with pytest.raises(WeightsMismatchError, match="weights_only"):
        convert_sag(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(main, ["convert", "sag", str(src), str(tmp_path / "cli")])
    assert res.exit_code == WeightsMismatchError.exit_code == 7, res.output
    assert not (tmp_path / "cli").exists()


def test_args_saved_as_a_dict_are_read_too(tmp_path):
    args = vars(official_args(crop_size=64, pseudo_threshold=0.45))
    src = save_like_official(tmp_path / "m.pth.tar", official_state_dict(), args)
    config = _config(convert_sag(src, tmp_path / "out"))
    assert config["inference"]["threshold"] == 0.45 and config["source"]["assumed"] == []


def test_given_values_must_agree_with_args(tmp_path):
    src = save_like_official(tmp_path / "m.pth.tar", official_state_dict(), official_args())
    with pytest.raises(InvalidInputError, match=r"num_slots=12 contradicts .*img_num_embeds"):
        convert_sag(src, tmp_path / "a", num_slots=12)
    convert_sag(src, tmp_path / "b", num_slots=6, image_size=64)  # agreeing: fine


@pytest.mark.parametrize(
    "flag,value", [("agg_gumbel_attn", True), ("slot_cond", True), ("agg_pos_enc", "none"),
                   ("txt_pooling", "max"), ("agg_cross_attn_type", "transformer")]
)
def test_flags_that_build_another_forward_pass_are_refused(tmp_path, flag, value):
    src = save_like_official(tmp_path / "m.pth.tar", official_state_dict(),
                             official_args(**{flag: value}))
    with pytest.raises(WeightsMismatchError, match=f"--{flag}"):
        convert_sag(src, tmp_path / "out")


def test_args_that_disagree_with_the_weights_are_refused(tmp_path):
    src = save_like_official(tmp_path / "m.pth.tar", official_state_dict(),
                             official_args(agg_depth=ITERS + 1))
    with pytest.raises(WeightsMismatchError, match=rf"iterations {ITERS} \(args say {ITERS + 1}\)"):
        convert_sag(src, tmp_path / "out")


def test_random_slots_are_read_from_args(tmp_path):
    sd = official_state_dict()
    q = "encoders.img_enc.set_pred_module.agg.queries"
    sd[f"{q}.slots_mu"] = sd[f"{q}.slots_mu"][:, :1].clone()
    sd[f"{q}.slots_log_sigma"] = sd[f"{q}.slots_log_sigma"][:, :1].clone()
    src = save_like_official(tmp_path / "m.pth.tar", sd, official_args(agg_query_type="random"))
    out = convert_sag(src, tmp_path / "out")
    arch = _config(out)["architecture"]
    assert (arch["slot_type"], arch["num_groups"], arch["slots_per_group"]) == ("random", 2, 3)
    ours = load_file(str(out / "model.safetensors"))
    assert torch.allclose(ours["slot_init.log_sigma"], 2 * sd[f"{q}.slots_log_sigma"])


def _near_dead_slot_block(eps: float, c: float) -> tuple[SlotAttentionBlock, torch.Tensor,
                                                          torch.Tensor]:
    """One head of width 2, q = k = c * LN(.), v = LN(.), W_o = identity, MLP = 0.

    LN of (a, -a) with a >> 1 is (1, -1) to 1e-12. Slot 0 is (1000, -1000), slot 1 the
    opposite, every pixel (1000, -1000): slot 1's logit is -sqrt(2) c^2 against slot 0's
    +sqrt(2) c^2, so it gets sigma = 1 / (1 + exp(2 sqrt(2) c^2)) of every pixel."""
    block = SlotAttentionBlock(2, 2, 1, 1, 0.0, eps=eps)
    with torch.no_grad():
        block.to_q.weight.copy_(c * torch.eye(2))
        block.to_k.weight.copy_(c * torch.eye(2))
        block.to_v.weight.copy_(torch.eye(2))
        block.to_out.weight.copy_(torch.eye(2))
        block.to_out.bias.zero_()
        block.mlp.fc2.weight.zero_()
        block.mlp.fc2.bias.zero_()
    slots = torch.tensor([[[1000.0, -1000.0], [-1000.0, 1000.0]]])
    pixels = torch.tensor([[1000.0, -1000.0]]).expand(1, 4, 2)
    return block, slots, pixels


@pytest.mark.parametrize("eps", [1e-7, 1e-8])
def test_a_near_dead_slot_gets_the_official_update(eps):
    # sigma chosen so that the slot's attention mass over the 4 pixels is 1e-7
    sigma = 2.5e-8
    c = math.sqrt(math.log(1 / sigma - 1) / (2 * math.sqrt(2)))
    block, slots, pixels = _near_dead_slot_block(eps, c)
    with torch.no_grad():
        keys, values = block.project_inputs(pixels)
        new, attn = block(slots, keys, values)
    mass = 4 * sigma
    assert float(attn[0, 0, 1].sum()) == pytest.approx(mass, rel=1e-4)
    # by hand: the slot moves by (mass / (mass + eps)) times the mean value (1, -1)
    step = mass / (mass + eps)  # 0.5 with the official 1e-7, 0.909 with 1e-8
    assert step == pytest.approx({1e-7: 0.5, 1e-8: 1 / 1.1}[eps])
    want = torch.tensor([[1000.0, -1000.0], [-1000.0 + step, 1000.0 - step]])
    want[0] += torch.tensor([1.0, -1.0]) * (4 * (1 - sigma)) / (4 * (1 - sigma) + eps)
    assert torch.allclose(new[0], want, atol=2e-3), (new, want)


def test_converted_models_use_the_official_epsilon_and_bundled_keep_theirs(tmp_path):
    src = save_like_official(tmp_path / "m.pth.tar", official_state_dict(), official_args())
    seg = wsris.load(convert_sag(src, tmp_path / "out"))
    assert seg.model.aggregation.eps == 1e-7
    bundled = wsris.load("sag-shapes")
    assert bundled.model.config.slot_attention_eps == 1e-8
    assert bundled.model.aggregation.eps == 1e-8


def test_no_truncation_below_the_encoders_limit(tmp_path):
    sd = official_state_dict(positions=64, vocab=BERT_VOCAB)
    src = save_like_official(tmp_path / "m.pth.tar", sd, official_args())
    seg = wsris.load(convert_sag(src, tmp_path / "out"))
    text = " ".join(["the", "man", "on", "the", "left"] * 12)  # 60 WordPieces
    batch = seg.tokenizer([text])
    assert batch.tokens[0][1:-1] == text.split() and batch.input_ids.shape[1] == 62
    with warnings.catch_warnings():
        warnings.simplefilter("error", TextWarning)
        seg.segment(np.zeros((64, 64, 3), np.uint8), text)
    with pytest.warns(TextWarning, match="truncated"):  # the old cut at 40 would
        Tokenizer(style="bert", max_length=40)([text])


def _distinct_rows(x: torch.Tensor) -> int:
    rows = x.flatten(1)
    return len({tuple(r.tolist()) for r in rows})


def test_converted_slots_are_distinct_and_seeded_fresh_noise_on_request(tmp_path):
    sd = official_state_dict(vocab=BERT_VOCAB)
    seg = wsris.load(convert_sag(
        save_like_official(tmp_path / "m.pth.tar", sd, official_args()), tmp_path / "out"))
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    first = seg.segment(image, "a red cup").stages["a_slot"]
    again = seg.segment(image, "a red cup").stages["a_slot"]
    assert torch.equal(first, again)  # seeded: the same slots every call
    assert _distinct_rows(first) == 3 * KG  # K distinct slots
    means = seg.segment(image, "a red cup", slot_init="mean").stages["a_slot"]
    assert _distinct_rows(means) == KG  # the means: each Gaussian's slots identical
    fresh = [seg.segment(image, "a red cup", slot_init="fresh").stages["a_slot"]
             for _ in range(2)]
    assert not torch.equal(fresh[0], fresh[1])  # the official behaviour: new noise each call
    card = (tmp_path / "out" / "README.md").read_text()
    assert "seeded with 0" in card and "slot_init=\"fresh\"" in card
