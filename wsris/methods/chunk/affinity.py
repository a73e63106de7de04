"""Refinement with patch affinity (chunk paper Sec. 3.3.1, Eq. 7).

``M^r = reshape_2d(A_v^T vec(M))`` with ``A_v`` the self-attention of one visual
encoder block (9 of 0..11 for ALBEF-base), heads averaged, image [CLS] row and column
removed: score at patch ``i`` flows to patch ``j`` in proportion to how much ``i``
attends to ``j``. One matrix product, on attention taken from the same forward pass.
"""

from __future__ import annotations

import torch


def patch_affinity(attention: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """``A_v`` ``[B, N, N]`` from self-attention ``[B, heads, P+N, P+N]`` (or ``[B, P+N, P+N]``).

    Heads are averaged and the ``num_prefix_tokens`` leading rows/columns ([CLS]) are
    dropped. Rows are not renormalised (Eq. 7 uses the attention as it is).
    """
    a = attention.float()
    if a.dim() == 4:
        a = a.mean(dim=1)
    elif a.dim() != 3:
        raise ValueError(f"expected [B, heads, n, n] or [B, n, n], got {tuple(a.shape)}")
    return a[:, num_prefix_tokens:, num_prefix_tokens:]


def refine_with_affinity(maps: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
    """Eq. 7 for maps ``[T, h, w]`` and an affinity ``[N, N]`` or ``[1 or T, N, N]``.

    Returns ``[T, h, w]`` float32 with ``out[t].flatten()[j] = sum_i A[i, j] * m_t[i]``.
    """
    t, h, w = maps.shape
    if affinity.dim() == 2:
        affinity = affinity[None]
    if affinity.shape[-2:] != (h * w, h * w):
        raise ValueError(
            f"affinity {tuple(affinity.shape)} does not fit maps of {h}x{w} = {h * w} patches"
        )
    vec = maps.float().reshape(t, 1, h * w)  # row vectors: m^T A = (A^T m)^T
    with torch.autocast(device_type=maps.device.type, enabled=False):  # keep float32
        out = torch.matmul(vec, affinity.float())  # broadcasts a single image's affinity
    return out.reshape(t, h, w)
