"""The CUDA path. These run where a GPU is (``lab/scripts/gpu_check.sh``) and skip elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsris
from tests.test_api import scene

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
TEXTS = ["the red square", "blue rectangle on the right"]


@pytest.fixture(autouse=True, scope="module")
def _minilm_where_the_package_is_missing():
    """On a GPU machine without the all-MiniLM-L6-v2 package, ``lab/scripts/gpu_check.sh``
    names its float16 transport copy in WSRIS_MINILM_TRANSPORT (see lab/scripts/gpu_carry.py)."""
    from lab.scripts.gpu_carry import use_minilm_transport_if_missing

    use_minilm_transport_if_missing()


@pytest.mark.parametrize("model", ["albef-chunk-shapes", "sag-shapes"])
def test_cuda_matches_cpu(model):
    cpu = wsris.load(model, device="cpu").segment(scene(), TEXTS)
    gpu = wsris.load(model, device="cuda").segment(scene(), TEXTS)
    for a, b in zip(cpu, gpu, strict=True):
        assert np.abs(a.heatmap - b.heatmap).max() < 1e-2
        agree = (a.mask == b.mask).mean()
        assert agree > 0.98


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("model", ["albef-chunk-shapes", "sag-shapes"])
def test_autocast_runs_and_stays_close(model, dtype):
    ref = wsris.load(model, device="cuda").segment(scene(), TEXTS)
    half = wsris.load(model, device="cuda", dtype=dtype).segment(scene(), TEXTS)
    for a, b in zip(ref, half, strict=True):
        assert b.mask.shape == a.mask.shape and np.isfinite(b.heatmap).all()
        union = np.logical_or(a.mask, b.mask).sum()
        assert union == 0 or np.logical_and(a.mask, b.mask).sum() / union > 0.5


def test_encoded_image_on_cuda():
    seg = wsris.load("albef-chunk-shapes", device="cuda")
    encoded = seg.encode(scene())
    assert encoded.pixel_values.device.type == "cuda"
    a, b = seg.segment(encoded, "red"), seg.segment(scene(), "red")
    np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
