"""Loading skips the random initialisation, and loads exactly what the file holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsris
from tests.test_api import scene, tiny_sag_config
from wsris.methods.chunk.model import AlbefConfig
from wsris.registry import build_model
from wsris.weights.folder import build_for_loading, load_weights


def configs() -> list[tuple[str, dict]]:
    sag = tiny_sag_config()["architecture"]
    return [("chunk", AlbefConfig.tiny().to_dict()), ("sag", sag),
            ("sag", {**sag, "learnable_logit_scale": False})]


@pytest.mark.parametrize("index", range(3))
def test_loaded_state_equals_an_ordinarily_built_model(index, tmp_path):
    from safetensors.torch import save_model

    method, arch = configs()[index]
    torch.manual_seed(index)
    source = build_model(method, arch).eval()
    path = tmp_path / "model.safetensors"
    save_model(source, str(path))
    fast = build_for_loading(method, arch)
    load_weights(fast, path, "test")
    fast.eval()
    want = dict(source.named_buffers()) | dict(source.named_parameters())
    got = dict(fast.named_buffers()) | dict(fast.named_parameters())
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert got[key].device.type == "cpu"
        assert torch.equal(got[key], value), key
    assert [p.requires_grad for p in fast.parameters()] == [
        p.requires_grad for p in source.parameters()]


@pytest.mark.filterwarnings("ignore::wsris.domain.DomainWarning")  # off-domain scene
def test_bundled_models_give_the_same_maps_either_way(monkeypatch):
    fast = wsris.load("sag-shapes", device="cpu").segment(scene(), "red")
    monkeypatch.setattr(wsris.weights.folder, "build_for_loading", build_model)
    slow = wsris.load("sag-shapes", device="cpu").segment(scene(), "red")
    np.testing.assert_array_equal(fast.heatmap, slow.heatmap)
