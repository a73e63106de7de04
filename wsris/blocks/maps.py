"""Low-resolution localisation maps -> the [0, 1] heat map at the image's size.

The one normalisation of inference: the Segmenter applies it to every method's output,
and a pipeline that needs the final map early (the chunk method, to pick a mask
proposal) calls the same function so both see the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-9  # a constant map becomes all zeros rather than a division by zero


def minmax(heat: torch.Tensor) -> torch.Tensor:
    """``heat`` linearly mapped to [0, 1] (its minimum to 0, its maximum to 1)."""
    lo, hi = heat.min(), heat.max()
    return (heat - lo) / (hi - lo + EPS)


def upsample_normalised(low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An ``[h, w]`` map resized bilinearly to ``size`` = ``(height, width)``, then min-max
    normalised; float32 on the map's device."""
    up = F.interpolate(low[None, None].float(), size=size, mode="bilinear", align_corners=False)
    return minmax(up[0, 0])
