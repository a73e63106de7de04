"""Official SaG checkpoint -> wsris, on synthetic state dicts with the official names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import load_file
from sag_official_layout import (  # noqa: I001 - a test helper module
    AGG,
    CMA,
    DEPTH,
    GRID0,
    ITERS,
    KG,
    LAT,
    LAYERS,
    POS,
    VOCAB,
    D,
    H,
    W,
    official_state_dict,
)

from wsris.errors import InvalidInputError, WeightsMismatchError
from wsris.methods.sag.convert import convert_sag
from wsris.methods.sag.convert_cli import sag_command
from wsris.methods.sag.model import SagConfig, SagModel
from wsris.registry import build_model
from wsris.weights.folder import load_weights


def save(tmp_path: Path, sd: dict[str, torch.Tensor], name: str = "model_best.pth.tar") -> Path:
    path = tmp_path / name
    torch.save({"model": sd, "iou": np.float64(0.3476), "loss": torch.tensor(2.5)}, path)
    return path


def test_convert_maps_every_official_parameter(tmp_path: Path) -> None:
    sd = official_state_dict()
    out = convert_sag(save(tmp_path, sd), tmp_path / "out", num_slots=6, image_size=64)
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "sag"
    assert config["preprocessing"] == {
        "size": [64, 64],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bilinear",
    }
    # no cut below the text encoder's position limit (POS), as the official code
    assert config["text"] == {"style": "bert", "max_length": POS}
    assert config["inference"] == {"threshold": 0.5, "combine": "product",
                                   "slot_init": "sample", "num_samples": 1, "seed": 0}
    assert config["source"]["val_iou"] == pytest.approx(0.3476)
    arch = SagConfig.from_dict(config["architecture"])
    assert (arch.num_groups, arch.slots_per_group, arch.iterations) == (KG, 3, ITERS)
    assert (arch.vision_width, arch.vision_layers, arch.vision_heads,
            arch.patch_size) == (W, DEPTH, 1, 8)
    assert (arch.text_width, arch.text_layers, arch.text_vocab_size) == (H, LAYERS, VOCAB)
    assert (arch.dim, arch.agg_hidden, arch.interaction_hidden, arch.fusion_hidden) == (
        D,
        AGG,
        LAT,
        CMA,
    )
    assert arch.decoder_pos == "learned" and arch.decoder_layers == 4
    assert arch.vision_layer_norm_eps == 1e-5 and arch.slot_type == "entity"
    assert arch.slot_attention_eps == 1e-7  # the official renormalisation constant
    # no args in this file: what was given, derived and assumed is recorded
    settings = config["source"]["settings"]
    assert (settings["num_slots"], settings["image_size"]) == ("given", "given")
    assert settings["slots_per_group"] == "K / Kg"
    assert set(config["source"]["assumed"]) == {
        "agg_heads", "interaction_heads", "fusion_heads", "vision_heads", "slot_type",
        "text_norm", "threshold", "dropout",
    }

    # loads strictly into the model the config describes (the Segmenter's own loader)
    model = build_model("sag", config["architecture"])
    load_weights(model, out / "model.safetensors", "converted")
    ours = load_file(str(out / "model.safetensors"))
    agg = "encoders.img_enc.set_pred_module.agg"
    vit, bert = "encoders.img_enc.img_backbone", "encoders.txt_enc.bert"
    pairs = {
        "aggregation.to_q.weight": f"{agg}.agg_blocks.2.0.fn.to_q.weight",
        "aggregation.norm_inputs.bias": f"{agg}.agg_blocks.0.0.norm_context.bias",
        "aggregation.mlp.fc2.weight": f"{agg}.agg_blocks.1.2.fn.net.3.weight",
        "interaction.layers.0.attn.to_out.weight": f"{agg}.agg_blocks.0.4.0.0.fn.to_out.0.weight",
        "interaction.layers.0.mlp.fc1.bias": f"{agg}.agg_blocks.0.4.0.2.fn.net.0.bias",
        "slot_init.mu": f"{agg}.queries.slots_mu",
        "slot_head.proj.weight": f"{agg}.last_layer.1.weight",
        "slot_head.norm.weight": "encoders.img_enc.set_pred_module.residual_norm.weight",
        "image_proj.weight": "encoders.img_enc.spm_1x1.weight",
        "image_encoder.blocks.1.attn.qkv.bias": f"{vit}.blocks.1.attn.qkv.bias",
        "text_encoder.encoder.layer.1.attention.self.key.weight": (
            f"{bert}.encoder.layer.1.attention.self.key.weight"
        ),
        "text_proj.bias": "encoders.txt_enc.linear.bias",
        "fusion.norm_query.weight": "cma.attn.norm.weight",
        "fusion.norm_context.weight": "cma.attn.norm_context.weight",
        "fusion.attn.to_v.weight": "cma.attn.fn.to_v.weight",
        "fusion.mlp.fc1.weight": "cma.ff.fn.net.0.weight",
        "decoder.pos.col_embed.weight": "decoder.pos_emb.col_embed.weight",
        "decoder.mlp.6.weight": "decoder.mlp.6.weight",
    }
    for mine, theirs in pairs.items():
        assert torch.equal(ours[mine], sd[theirs]), mine
    # the 10x10 grid (built for 80 px) is resized bilinearly to 8x8 (64 px), class token kept
    pos = sd["encoders.img_enc.img_backbone.pos_embed"]
    grid = pos[:, 1:].reshape(1, GRID0, GRID0, W).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(8, 8), mode="bilinear", align_corners=False)
    want = torch.cat([pos[:, :1], want.permute(0, 2, 3, 1).reshape(1, 64, W)], dim=1)
    assert torch.allclose(ours["image_encoder.pos_embed"], want)
    dropped = set(config["source"]["dropped_keys"])
    assert "encoders.txt_enc.bert.pooler.dense.weight" in dropped
    assert "encoders.img_enc.img_backbone.head.weight" in dropped

    # and it runs
    model.eval()
    with torch.no_grad():
        _, slots = model.encode_slots(torch.randn(1, 3, 64, 64), "mean")
        fused = model.fuse(
            slots.slots, model.encode_text(torch.tensor([[1, 7, 2]]), torch.ones(1, 3))
        )
    assert fused.a_fuse.shape == (1, 1, 6)


def test_data_parallel_prefix_is_accepted(tmp_path: Path) -> None:
    sd = {f"module.{k}": v for k, v in official_state_dict().items()}
    out = convert_sag(save(tmp_path, sd), tmp_path / "out", num_slots=6, image_size=64)
    assert (out / "model.safetensors").is_file()


def test_shared_copies_must_be_identical(tmp_path: Path) -> None:
    sd = official_state_dict()
    key = "encoders.img_enc.set_pred_module.agg.agg_blocks.1.0.fn.to_k.weight"
    sd[key] = sd[key].clone() + 1e-3
    with pytest.raises(WeightsMismatchError, match=r"agg_blocks\.1\.0\.fn\.to_k"):
        convert_sag(save(tmp_path, sd), tmp_path / "out", num_slots=6, image_size=64)
    assert not (tmp_path / "out").exists()


def test_unexpected_and_missing_keys(tmp_path: Path) -> None:
    sd = official_state_dict()
    sd["cma_self.attn.fn.to_q.weight"] = torch.zeros(4, 4)
    with pytest.raises(WeightsMismatchError, match=r"unexpected.*cma_self\.attn\.fn\.to_q"):
        convert_sag(save(tmp_path, sd), tmp_path / "a", num_slots=6, image_size=64)
    sd = official_state_dict()
    del sd["cma.ff.fn.net.3.bias"]
    with pytest.raises(WeightsMismatchError, match=r"missing keys: \['fusion\.mlp\.fc2\.bias'\]"):
        convert_sag(save(tmp_path, sd), tmp_path / "b", num_slots=6, image_size=64)
    sd = official_state_dict()
    sd["encoders.txt_enc.linear.weight"] = torch.zeros(D, H + 1)
    with pytest.raises(WeightsMismatchError, match="shape mismatches.*text_proj.weight"):
        convert_sag(save(tmp_path, sd), tmp_path / "c", num_slots=6, image_size=64)
    with pytest.raises(WeightsMismatchError, match="cannot be split"):
        convert_sag(
            save(tmp_path, official_state_dict()), tmp_path / "d", num_slots=7, image_size=64
        )


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "x.pth.tar"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(WeightsMismatchError, match="'model'"):
        convert_sag(path, tmp_path / "out")


def test_random_slot_checkpoint_doubles_log_sigma(tmp_path: Path) -> None:
    sd = official_state_dict()
    agg = "encoders.img_enc.set_pred_module.agg.queries"
    sd[f"{agg}.slots_mu"] = sd[f"{agg}.slots_mu"][:, :1].clone()
    sd[f"{agg}.slots_log_sigma"] = sd[f"{agg}.slots_log_sigma"][:, :1].clone()
    out = convert_sag(
        save(tmp_path, sd),
        tmp_path / "out",
        num_slots=6,
        image_size=64,
        slots_per_group=3,
        random_slots=True,
    )
    arch = json.loads((out / "config.json").read_text())["architecture"]
    assert (arch["slot_type"], arch["num_groups"], arch["slots_per_group"]) == ("random", 2, 3)
    ours = load_file(str(out / "model.safetensors"))
    assert torch.allclose(ours["slot_init.log_sigma"], 2 * sd[f"{agg}.slots_log_sigma"])


def test_cli(tmp_path: Path) -> None:
    src = save(tmp_path, official_state_dict())
    res = CliRunner().invoke(
        sag_command, [str(src), str(tmp_path / "cli"), "--num-slots", "6", "--image-size", "64"]
    )
    assert res.exit_code == 0, res.output
    assert "model.safetensors" in res.output
    assert SagModel(
        SagConfig.from_dict(
            json.loads((tmp_path / "cli" / "config.json").read_text())["architecture"]
        )
    )


def test_overwrite_and_source_hash(tmp_path: Path) -> None:
    import hashlib

    src = save(tmp_path, official_state_dict())
    out = convert_sag(src, tmp_path / "o", num_slots=6, image_size=64)
    source = json.loads((out / "config.json").read_text())["source"]
    assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(InvalidInputError, match="overwrite"):
        convert_sag(src, out, num_slots=6, image_size=64)
    convert_sag(src, out, num_slots=6, image_size=64, overwrite=True)
