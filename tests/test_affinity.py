"""Affinity refinement (Eq. 7) by hand and from a real forward pass."""

from __future__ import annotations

import pytest
import torch
from chunk_helpers import tiny_model

from wsris.methods.chunk.affinity import patch_affinity, refine_with_affinity


def test_patch_affinity_averages_heads_and_drops_cls():
    att = torch.zeros(1, 2, 3, 3)
    att[0, 0] = torch.tensor([[0.5, 0.25, 0.25], [0.9, 0.1, 0.0], [0.2, 0.4, 0.4]])
    att[0, 1] = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.3, 0.6], [0.6, 0.0, 0.4]])
    aff = patch_affinity(att)
    torch.testing.assert_close(aff, torch.tensor([[[0.2, 0.3], [0.2, 0.4]]]))


def test_refine_is_a_transpose_product_by_hand():
    # 2x2 grid, patches 0..3 in row-major order.
    a = torch.tensor(
        [[0.5, 0.5, 0.0, 0.0],
         [0.0, 1.0, 0.0, 0.0],
         [0.0, 0.0, 0.0, 1.0],
         [0.25, 0.25, 0.25, 0.25]]
    )  # fmt: skip
    m = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]])
    # (A^T m)_j = sum_i A[i, j] m_i with m = [2, 0, 0, 4]:
    # j0: 2*0.5 + 4*0.25 = 2 ; j1: 2*0.5 + 4*0.25 = 2 ; j2: 4*0.25 = 1 ; j3: 4*0.25 = 1
    out = refine_with_affinity(m, a)
    torch.testing.assert_close(out, torch.tensor([[[2.0, 2.0], [1.0, 1.0]]]))
    # several maps share one image's affinity, given as [N, N] or [1, N, N]
    maps = torch.stack([m[0], 2 * m[0], torch.ones(2, 2)])
    batched = refine_with_affinity(maps, a[None])
    torch.testing.assert_close(batched[1], 2 * out[0])
    torch.testing.assert_close(batched[2], a.sum(0).reshape(2, 2))
    # the identity propagates nothing
    torch.testing.assert_close(refine_with_affinity(maps, torch.eye(4)), maps)
    with pytest.raises(ValueError, match="does not fit"):
        refine_with_affinity(maps, torch.eye(9))


def test_refine_from_the_forward_pass_attention():
    model = tiny_model()
    with torch.no_grad():
        vision = model.encode_image(torch.randn(1, 3, 32, 32), attention_block=3)
    aff = patch_affinity(vision.attention)
    assert aff.shape == (1, 16, 16)
    maps = torch.rand(2, 4, 4)
    out = refine_with_affinity(maps, aff)
    mean_heads = vision.attention.mean(1)[0, 1:, 1:]
    expected = (mean_heads.T @ maps.reshape(2, 16).T).T.reshape(2, 4, 4)
    torch.testing.assert_close(out, expected)


def test_float32_under_autocast():
    model = tiny_model()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model.encode_image(x, attention_block=2).attention
        with torch.autocast("cpu", dtype=torch.bfloat16):
            vision = model.encode_image(x, attention_block=2)
            out = refine_with_affinity(torch.rand(2, 4, 4), patch_affinity(vision.attention))
    assert vision.attention.dtype == torch.float32 and out.dtype == torch.float32
    torch.testing.assert_close(vision.attention.sum(-1), torch.ones(1, 2, 17))
    assert (vision.attention - ref).abs().max() < 0.05  # only the bf16 qkv projection differs
