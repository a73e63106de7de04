"""TRIS converted from official-layout checkpoints with random weights: strict conversion,
and maps equal to a reference written from the official definitions."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from tris_layout import (
    RN50,
    TINY,
    ref_mask,
    ref_stage1,
    ref_stage2,
    save_official,
    stage1_shapes,
    stage2_shapes,
)

import wsris
from wsris.errors import WeightsMismatchError
from wsris.methods.tris.convert import convert_tris, dropped_group
from wsris.methods.tris.model import TrisConfig, TrisModel

TEXTS = ["man on the right", "the dog", "a very long expression about the small brown dog "
         "sitting beside the tall man at the far end of the red bench"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("tris")
    out = {}
    for stage, shapes in ((1, stage1_shapes(TINY)), (2, stage2_shapes(TINY))):
        src = root / f"stage{stage}_tiny.pth"
        sd = save_official(src, shapes, seed=2)  # a draw whose maps are not all one sign
        folder = convert_tris(src, root / f"conv{stage}", image_size=128)
        out[stage] = (src, sd, folder)
    return out


@pytest.mark.parametrize("stage", [1, 2])
def test_official_layout_converts_strictly(converted, stage):
    src, sd, folder = converted[stage]
    config = json.loads((folder / "config.json").read_text())
    source = config["source"]
    assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert source["sha256_published"] is None and source["stage"] == stage
    assert source["layout"] == "wrapped"
    assert source["ignored_entries"] == ["epoch", "lr_scheduler", "optimizer"]
    expected_drop = {"attention_pool": 9, "clip_logit_scale": 1}  # table + 4 x (W, b)
    if stage == 2:
        expected_drop["deep_supervision"] = 3 * 8  # each: conv, 5 BN entries, PReLU, 1x1
    assert source["dropped"] == expected_drop
    arch = config["architecture"]
    assert arch["stage"] == stage and arch["vision_width"] == 8 and arch["text_width"] == 64
    assert arch["vision_layers"] == [1, 1, 1, 1] and arch["text_heads"] == 1
    assert config["text"] == {"style": "clip", "max_length": 20}
    card = (folder / "README.md").read_text()
    assert "What was checked without these weights" in card and "Not checked" in card
    # every kept tensor arrives unchanged
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model.safetensors"))
    kept = {k: v for k, v in sd.items() if dropped_group(k) is None}
    assert set(saved) == set(kept)
    assert all(torch.equal(saved[k], kept[k].to(saved[k].dtype)) for k in kept)


@pytest.mark.parametrize("stage", [1, 2])
def test_full_size_official_keys_and_shapes_fill_the_model(stage):
    shapes = stage1_shapes(RN50) if stage == 1 else stage2_shapes(RN50)
    with torch.device("meta"):
        model = TrisModel(TrisConfig(stage=stage))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    kept = {k: s for k, s in shapes.items() if dropped_group(k) is None}
    assert kept == expected
    dropped = set(shapes) - set(kept)
    assert all(k.startswith(("backbone.visual.attnpool.", "final_seg")) or
               k == "backbone.logit_scale" for k in dropped)


@pytest.mark.filterwarnings("ignore::wsris.errors.TextWarning")  # the long text is cut on purpose
@pytest.mark.parametrize("stage", [1, 2])
def test_maps_and_masks_equal_the_reference(converted, stage):
    _, sd, folder = converted[stage]
    seg = wsris.load(folder, device="cpu")
    rng = np.random.default_rng(stage)
    rgb = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    rgb[:, :35] //= 8  # a dark half: pixels that differ, so maps that vary
    results = seg.segment(rgb, TEXTS)
    x = seg.preprocess(rgb)
    ids = seg.tokenizer(TEXTS).input_ids
    ref = ref_stage1 if stage == 1 else ref_stage2
    partial = 0  # texts whose mask is neither empty nor the whole image
    for t, res in enumerate(results):
        want = ref(sd, TINY, x, ids[t:t + 1])  # one text per call, as TRIS validates
        got = res.stages["map"]
        assert got.shape == (128, 128)
        assert torch.allclose(got, want[0, 0], atol=1e-5, rtol=1e-4)
        assert np.array_equal(res.mask, ref_mask(want, (45, 70)).numpy())
        partial += 0 < res.mask.mean() < 1
    assert partial >= 1  # the comparison is not between trivial maps


def test_preprocessing_is_the_official_transform(converted):
    """320-style resize without keeping the aspect (PIL bilinear) and ImageNet mean/std."""
    from PIL import Image

    seg = wsris.load(converted[2][2], device="cpu")
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(rgb).resize((128, 128), Image.BILINEAR), np.float32)
    resized = resized / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1)).float()
    assert torch.allclose(seg.preprocess(rgb)[0], want, atol=1e-6)


def test_mismatches_are_named(tmp_path):
    shapes = stage2_shapes(TINY)
    sd = save_official(tmp_path / "ok.pth", shapes)
    broken = dict(sd)
    broken.pop("attention3.Wq.weight")
    broken["extra.weight"] = torch.zeros(2)
    broken["reduced_c2.conv.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save({"model": broken}, tmp_path / "bad.pth")
    with pytest.raises(WeightsMismatchError) as err:
        convert_tris(tmp_path / "bad.pth", tmp_path / "out")
    msg = str(err.value)
    assert "attention3.Wq.weight" in msg and "extra.weight" in msg
    assert "reduced_c2.conv.weight" in msg and "1 missing, 1 unexpected, 1 mis-shaped" in msg
    assert not (tmp_path / "out").exists()
    torch.save({"model": {"foo.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(WeightsMismatchError, match="not a TRIS checkpoint"):
        convert_tris(tmp_path / "other.pth", tmp_path / "out")


def test_plain_and_ddp_state_dicts_convert(tmp_path):
    sd = save_official(tmp_path / "plain.pth", stage1_shapes(TINY, bilateral=False), wrapped=False)
    folder = convert_tris(tmp_path / "plain.pth", tmp_path / "a", image_size=64)
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"]["bilateral"] is False and config["source"]["layout"] == "plain"
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    convert_tris(tmp_path / "ddp.pth", tmp_path / "b", image_size=64)


class Scheduler:  # an object pickled whole, as TRIS's save_checkpoint may fall back to
    pass


def test_pickled_objects_are_refused_with_the_reason(tmp_path):
    sd = stage2_shapes(TINY)
    from tris_layout import random_state

    torch.save({"model": random_state(sd), "lr_scheduler": Scheduler()}, tmp_path / "obj.pth")
    with pytest.raises(WeightsMismatchError) as err:
        convert_tris(tmp_path / "obj.pth", tmp_path / "out")
    assert "weights_only=True" in str(err.value)
    assert "an object of type test_tris_model.Scheduler" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_convert_cli(tmp_path):
    from click.testing import CliRunner

    from wsris.cli import main

    save_official(tmp_path / "s1.pth", stage1_shapes(TINY))
    result = CliRunner().invoke(main, ["convert", "tris", str(tmp_path / "s1.pth"),
                                       str(tmp_path / "out"), "--image-size", "64"])
    assert result.exit_code == 0, result.output
    assert "stage 1" in result.output and "no checksum" in result.output
    again = CliRunner().invoke(main, ["convert", "tris", str(tmp_path / "s1.pth"),
                                      str(tmp_path / "out")])
    assert again.exit_code != 0 and "--overwrite" in again.output


@pytest.mark.slow  # the full CLIP RN50 at 320 px: about 10 s per stage on one core
@pytest.mark.parametrize("stage", [1, 2])
def test_full_size_maps_equal_the_reference(tmp_path, stage):
    shapes = stage1_shapes(RN50) if stage == 1 else stage2_shapes(RN50)
    sd = save_official(tmp_path / "full.pth", shapes, seed=stage)
    seg = wsris.load(convert_tris(tmp_path / "full.pth", tmp_path / "out"), device="cpu")
    rgb = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    res = seg.segment(rgb, TEXTS[0])
    ids = seg.tokenizer([TEXTS[0]]).input_ids
    want = (ref_stage1 if stage == 1 else ref_stage2)(sd, RN50, seg.preprocess(rgb), ids)
    assert torch.allclose(res.stages["map"], want[0, 0], atol=1e-4, rtol=1e-4)
    assert np.array_equal(res.mask, ref_mask(want, (120, 90)).numpy())
