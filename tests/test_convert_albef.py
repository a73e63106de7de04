"""ALBEF checkpoint conversion on synthetic checkpoints with the official names/shapes."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
import torch.nn.functional as F
from albef_layout import (
    BASE,
    TINY,
    grounding_layout,
    materialise,
    pretrain_layout,
    wsris_layout,
)
from click.testing import CliRunner
from safetensors.torch import load_file

from wsris.cli.convert import convert_group
from wsris.errors import InvalidInputError, WeightsMismatchError
from wsris.methods.chunk.convert import convert_albef, map_albef_state_dict
from wsris.methods.chunk.model import AlbefConfig
from wsris.registry import build_model


@pytest.fixture
def tiny():
    return AlbefConfig.tiny()


def _save(tmp_path, obj, name):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_grounding_checkpoint(tmp_path, tiny):
    sd = materialise(grounding_layout(TINY))
    src = _save(tmp_path, sd, "refcoco.pth")
    out = convert_albef(src, tmp_path / "out", config=tiny)
    assert out == tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "chunk"
    assert config["architecture"] == tiny.to_dict()
    assert config["preprocessing"] == {
        "size": [32, 32],
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
    }
    # no cut below the text encoder's own limit, as Grounding.py evaluates
    assert config["text"] == {"style": "albef", "max_words": 30,
                              "max_length": tiny.text_max_positions}
    assert config["inference"] == {
        "threshold": 0.3, "stages": ["gradcam", "affinity", "proposals"],
        "gradcam_layer": 2, "affinity_layer": 3, "proposal_tau": 0.3,
    }  # fmt: skip
    source = config["source"]
    assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert source["variant"] == "grounding" and source["file"] == "refcoco.pth"
    assert source["dropped"] == {"position_ids": 1}
    assert source["position_grid_resized"] is None

    weights = load_file(out / "model.safetensors")
    assert {k: tuple(v.shape) for k, v in weights.items()} == wsris_layout(TINY)
    for key, value in weights.items():
        assert torch.equal(value, sd[key]), key
    # loads strictly into the model the config describes
    model = build_model("chunk", config["architecture"])
    model.load_state_dict(weights, strict=True)
    with pytest.raises(InvalidInputError, match="exists"):
        convert_albef(src, out, config=tiny)
    convert_albef(src, out, config=tiny, overwrite=True)


def test_pretrain_checkpoint_renames_drops_and_resizes(tmp_path, tiny):
    sd = materialise(pretrain_layout(TINY, grid=2), seed=3)  # "256 px": 2x2 grid here
    src = _save(tmp_path, {"model": sd, "epoch": 29, "config": {"lr": 1e-4}}, "ALBEF.pth")
    out = convert_albef(src, tmp_path / "out", variant="pretrain", config=tiny)
    source = json.loads((out / "config.json").read_text())["source"]
    assert source["variant"] == "pretrain"
    assert source["position_grid_resized"] == [2, 4]
    layout = pretrain_layout(TINY, grid=2)
    momentum = [k for k in layout if k.split(".")[0].endswith("_m")]
    mlm = [k for k in layout if k.startswith("text_encoder.cls.")]
    assert source["dropped"] == {
        "momentum": len(momentum),  # text_encoder_m.bert.embeddings.position_ids included
        "mlm_head": len(mlm),
        "position_ids": 1,
        "queues": 3,
    }
    weights = load_file(out / "model.safetensors")
    assert set(weights) == set(wsris_layout(TINY))
    for key, value in weights.items():
        if key == "visual_encoder.pos_embed":
            continue
        src_key = key.replace("text_encoder.", "text_encoder.bert.", 1)
        assert torch.equal(value, sd[src_key if src_key in sd else key]), key
    # position grid: [CLS] kept, 2x2 -> 4x4 bicubic (align_corners=False) by hand
    old = sd["visual_encoder.pos_embed"]
    grid = old[:, 1:].reshape(1, 2, 2, 32).permute(0, 3, 1, 2)
    big = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False)
    expected = torch.cat([old[:, :1], big.permute(0, 2, 3, 1).reshape(1, 16, 32)], dim=1)
    torch.testing.assert_close(weights["visual_encoder.pos_embed"], expected)


def test_variant_detection_and_mismatch(tmp_path, tiny):
    grounding = materialise(grounding_layout(TINY))
    pretrain = {"model": materialise(pretrain_layout(TINY, grid=4))}
    _, report = map_albef_state_dict(pretrain, tiny)
    assert report.variant == "pretrain"
    with pytest.raises(WeightsMismatchError, match="pretrain layout, not grounding"):
        map_albef_state_dict(pretrain, tiny, variant="grounding")
    with pytest.raises(WeightsMismatchError, match="grounding layout, not pretrain"):
        map_albef_state_dict(grounding, tiny, variant="pretrain")


def test_unexpected_missing_and_wrong_shapes_are_listed(tiny):
    sd = materialise(grounding_layout(TINY))
    extra = dict(sd, **{"text_encoder.pooler.dense.weight": torch.zeros(32, 32)})
    with pytest.raises(WeightsMismatchError, match=r"unexpected keys: \['text_encoder.pooler"):
        map_albef_state_dict(extra, tiny)
    missing = {k: v for k, v in sd.items() if k != "itm_head.bias"}
    with pytest.raises(WeightsMismatchError, match=r"missing keys: \['itm_head.bias'\]"):
        map_albef_state_dict(missing, tiny)
    wrong = dict(sd, **{"itm_head.weight": torch.zeros(3, 32)})
    with pytest.raises(WeightsMismatchError, match=r"itm_head.weight: checkpoint \(3, 32\)"):
        map_albef_state_dict(wrong, tiny)
    # a base checkpoint is not a tiny model: a short summary naming the likely cause
    with pytest.raises(WeightsMismatchError, match="shape mismatches") as err:
        map_albef_state_dict(materialise(grounding_layout(BASE), device="meta"), tiny)
    message = str(err.value)
    assert len(message) < 1200, len(message)  # was one line of every tensor (30 KB at base)
    assert "and " in message and " more" in message
    assert f"width {BASE.width} vs {TINY.width}" in message
    n_wrong = int(message.split(" mis-shaped")[0].rsplit(" ", 1)[-1])
    assert n_wrong > 10


def test_full_size_layouts_by_shape_on_meta():
    base = AlbefConfig.base()
    state, report = map_albef_state_dict(materialise(grounding_layout(BASE), device="meta"), base)
    assert {k: tuple(v.shape) for k, v in state.items()} == wsris_layout(BASE)
    assert report.dropped == {"position_ids": ["text_encoder.embeddings.position_ids"]}
    pre = {"model": materialise(pretrain_layout(BASE, grid=16), device="meta")}
    state, report = map_albef_state_dict(pre, base)
    assert report.position_grid == (16, 24)
    assert state["visual_encoder.pos_embed"].shape == (1, 577, 768)
    assert {k: tuple(v.shape) for k, v in state.items()} == wsris_layout(BASE)
    assert set(report.dropped) == {"momentum", "queues", "mlm_head", "position_ids"}
    assert report.renamed == len([k for k in pretrain_layout(BASE, 16)
                                  if k.startswith("text_encoder.bert.")]) - 1  # fmt: skip


class _NotAllowed:
    pass


def test_refuses_pickled_code(tmp_path, tiny):
    src = _save(tmp_path, {"model": {}, "hook": _NotAllowed()}, "evil.pth")
    with pytest.raises(WeightsMismatchError, match="weights_only=True"):
        convert_albef(src, tmp_path / "out", config=tiny)


def test_cli(tmp_path, monkeypatch):
    monkeypatch.setattr(AlbefConfig, "base", classmethod(lambda cls: AlbefConfig.tiny()))
    sd = materialise(pretrain_layout(TINY, grid=2))
    src = _save(tmp_path, {"model": sd}, "ALBEF_4M.pth")
    runner = CliRunner()
    result = runner.invoke(convert_group, ["albef", str(src), str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "variant: pretrain" in result.output
    assert "position grid resized bicubically from 2x2 to 4x4" in result.output
    assert (tmp_path / "m" / "model.safetensors").is_file()
    bad = runner.invoke(
        convert_group, ["albef", str(src), str(tmp_path / "n"), "--variant", "grounding"]
    )
    assert isinstance(bad.exception, WeightsMismatchError)
    assert runner.invoke(convert_group, ["albef", str(src), "x", "--variant", "x"]).exit_code == 2
    assert math.isfinite(load_file(tmp_path / "m" / "model.safetensors")["temp"].item())


def test_cli_prints_a_load_call_that_works_when_pasted(tmp_path, monkeypatch):
    import re

    import wsris

    monkeypatch.setattr(AlbefConfig, "base", classmethod(lambda cls: AlbefConfig.tiny()))
    src = _save(tmp_path, materialise(grounding_layout(TINY)), "refcoco.pth")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(convert_group, ["albef", str(src), "m768"])
    assert result.exit_code == 0, result.output
    call = re.search(r"wsris\.load\(('[^']+')\)", result.output)
    assert call is not None, result.output
    seg = wsris.load(eval(call.group(1)))  # the printed argument, as pasted
    assert seg.method == "chunk" and seg.tokenizer.max_length == TINY.max_positions
    assert wsris.load("m768").method == "chunk"  # the bare name loads the folder too
