"""TRIS's two text-image attention blocks (``model/attn.py`` of the official code).

:class:`BilateralPrompt` (stage 1): pixels attend to the text and the text attends to
the pixels, each through three projections; softmax scale ``1/sqrt(C)``. The pixel
side's softmax runs over the texts of the batch: TRIS validates with one text per call,
so the pipeline gives every text its own batch row and that softmax is over one text.

:class:`PixelAttention` (stage 2, after LAVT): each pixel attends over the token
features, the result gates the visual features. No padding mask: all 20 positions,
padding included, take part, as in the official code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _conv_norm(cin: int, cout: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 1), nn.InstanceNorm2d(cout, affine=True)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _linear_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.ReLU())


class BilateralPrompt(nn.Module):
    """``(vis [B, C, H, W], lan [B, T, C]) -> (vis update [B, C, H, W], lan update [B, T, C])``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.v_proj1, self.v_proj2, self.v_proj3 = (_conv_norm(c, c) for _ in range(3))
        self.t_proj1, self.t_proj2, self.t_proj3 = (_linear_relu(c, c) for _ in range(3))
        self.v_output = _conv_norm(c, c, relu=False)
        self.t_output = nn.Sequential(nn.Linear(c, c))

    def forward(self, vis: torch.Tensor, lan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = vis.shape
        scale = 1.0 / math.sqrt(lan.shape[-1])
        q_v = self.v_proj1(vis).flatten(2).transpose(1, 2)  # [B, HW, C]
        k_v = self.v_proj2(vis).flatten(2)  # [B, C, HW]
        v_v = self.v_proj3(vis).flatten(2).transpose(1, 2)  # [B, HW, C]
        q_t, k_t, v_t = self.t_proj1(lan), self.t_proj2(lan), self.t_proj3(lan)  # [B, T, C]
        pixel_to_text = F.softmax(q_v @ k_t.transpose(1, 2) * scale, dim=2)  # [B, HW, T]
        text_to_pixel = F.softmax(q_t @ k_v * scale, dim=2)  # [B, T, HW]
        new_vis = (pixel_to_text @ v_t).transpose(1, 2).reshape(b, c, h, w)
        return self.v_output(new_vis), self.t_output(text_to_pixel @ v_v)


class PixelAttention(nn.Module):
    """``(vis [N, Ci, H, W], lan [N, Ct, L]) -> [N, Ci, H, W]`` (added to ``vis`` by the caller)."""

    def __init__(self, visual_channels: int, language_channels: int) -> None:
        super().__init__()
        ci, ct = visual_channels, language_channels
        self.Wk = nn.Conv1d(ct, ci, 1)
        self.Wv = nn.Conv1d(ct, ci, 1)
        self.Wq = nn.Conv2d(ci, ci, 1)
        self.Wm = nn.Conv2d(ci, ci, 1)
        self.Ww = nn.Conv2d(ci, ci, 1)
        self.Wo = nn.Conv2d(ci, ci, 1)
        self.ins_q = nn.InstanceNorm2d(ci, affine=True)
        self.ins_w = nn.InstanceNorm2d(ci, affine=True)

    def forward(self, vis: torch.Tensor, lan: torch.Tensor) -> torch.Tensor:
        n, ci, h, w = vis.shape
        keys, values = self.Wk(lan), self.Wv(lan)  # [N, Ci, L]
        query = self.ins_q(self.Wq(vis)).flatten(2).transpose(1, 2)  # [N, HW, Ci]
        attn = F.softmax(query @ keys / math.sqrt(ci), dim=2)  # [N, HW, L]
        gathered = (attn @ values.transpose(1, 2)).transpose(1, 2).reshape(n, ci, h, w)
        gate = self.ins_w(self.Ww(gathered))
        return torch.relu(self.Wo(torch.relu(self.Wm(vis)) * gate))
