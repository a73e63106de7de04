"""Building blocks shared by the models."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class ConvStemPatchEmbed(nn.Module):
    """Departure for tiny models: ``log2(patch)`` stride-2 3x3 convolutions with batch norm
    and GELU, then a 1x1 projection, in place of timm's single patchify convolution. Same
    interface as ``timm.layers.PatchEmbed`` as far as ``VisionTransformer`` uses it."""

    dynamic_img_pad = False

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        stem_channels: int = 0,
        **_: Any,
    ) -> None:
        super().__init__()
        size = img_size if isinstance(img_size, int) else img_size[0]
        p = patch_size if isinstance(patch_size, int) else patch_size[0]
        self.img_size = (size, size)
        self.patch_size = (p, p)
        self.grid_size = (size // p, size // p)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten = True
        self.output_fmt = "NCHW"
        self.strict_img_size = True
        c = stem_channels or max(embed_dim // 2, 8)
        layers: list[nn.Module] = []
        width = in_chans
        for _ in range(int(math.log2(p))):
            # BatchNorm keeps the image signal at unit scale: without it the stem's
            # output is small next to the position embedding and a from-scratch model
            # collapses to image-independent tokens (measured: ITC stuck at log(B)).
            layers += [
                nn.Conv2d(width, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.GELU(),
            ]
            width = c
        layers.append(nn.Conv2d(width, embed_dim, 1))
        self.proj = nn.Sequential(*layers)
        self.norm = nn.Identity()

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.patch_size[0] if as_scalar else self.patch_size

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        return img_size[0] // self.patch_size[0], img_size[1] // self.patch_size[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)
