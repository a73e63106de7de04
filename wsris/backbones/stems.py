"""The image stems a ViT can start with, and the one choice of them (``stem``).

- ``"patch"``: ViT's single patchify convolution (:class:`wsris.backbones.vit.PatchEmbed`);
- ``"conv"``: :class:`ConvStemPatchEmbed`, strided 3x3 convolutions trained from scratch;
- ``"efficientnet_lite0"``: :class:`EfficientNetStemPatchEmbed`, the first three stages of
  EfficientNet-Lite0 (stride 8), frozen unless ``stem_frozen`` is off.

The last two are departures for small models (off in both papers), so that image tokens
stay local.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn


def _set_patch_grid(
    module: nn.Module, img_size: int | tuple[int, int], patch_size: int | tuple[int, int]
) -> int:
    """Set the grid attributes ``VisionTransformer`` reads from its patch embedding (square
    images); returns the patch side."""
    size = img_size if isinstance(img_size, int) else img_size[0]
    p = patch_size if isinstance(patch_size, int) else patch_size[0]
    module.img_size = (size, size)
    module.patch_size = (p, p)
    module.grid_size = (size // p, size // p)
    module.num_patches = module.grid_size[0] * module.grid_size[1]
    module.flatten = True
    module.output_fmt = "NCHW"
    module.strict_img_size = True
    return p


class ConvStemPatchEmbed(nn.Module):
    """Departure for tiny models: ``log2(patch)`` stride-2 3x3 convolutions with batch norm
    and GELU, then a 1x1 projection, in place of timm's single patchify convolution. Same
    interface as :class:`wsris.backbones.vit.PatchEmbed`."""

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
        p = _set_patch_grid(self, img_size, patch_size)
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


#: Output channels of EfficientNet-Lite0 after its third stage (stride 8).
EFFICIENTNET_LITE0_STRIDE8_CHANNELS = 40


class EfficientNetStemPatchEmbed(nn.Module):
    """Departure for small models: the first three stages of EfficientNet-Lite0 (stride 8,
    40 channels; ImageNet-pretrained weights are loaded by the training init, see
    ``wsris.training.warm_start``) then a 1x1 projection with batch norm to the token width.
    Tokens see about 40 px of the image, so they stay local. ``frozen`` keeps the
    backbone's weights and batch-norm statistics fixed (it runs in eval mode, without
    gradients). Same interface as :class:`ConvStemPatchEmbed`."""

    dynamic_img_pad = False

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 8,
        in_chans: int = 3,
        embed_dim: int = 768,
        frozen: bool = True,
        **_: Any,
    ) -> None:
        super().__init__()
        from .efficientnet import efficientnet_lite0_stride8

        if _set_patch_grid(self, img_size, patch_size) != 8 or in_chans != 3:
            raise ValueError("the EfficientNet-Lite0 stem needs patch_size 8 and RGB input")
        self.backbone = efficientnet_lite0_stride8()
        self.frozen = frozen
        if frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        c = EFFICIENTNET_LITE0_STRIDE8_CHANNELS
        self.proj = nn.Sequential(nn.Conv2d(c, embed_dim, 1, bias=False), nn.BatchNorm2d(embed_dim))
        self.norm = nn.Identity()

    def train(self, mode: bool = True) -> EfficientNetStemPatchEmbed:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    feat_ratio = ConvStemPatchEmbed.feat_ratio
    dynamic_feat_size = ConvStemPatchEmbed.dynamic_feat_size

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, N, embed_dim]`` and the backbone's own features ``[B, N, 40]``."""
        # channels-last runs the depthwise convolutions about twice as fast on the CPU
        x = x.contiguous(memory_format=torch.channels_last)
        if self.frozen:
            with torch.no_grad():
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        return self.tokens_from_features(feats), feats.flatten(2).transpose(1, 2).contiguous()

    def tokens_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, N, embed_dim]`` from the backbone's output ``[B, 40, h, w]``."""
        return self.proj(feats).flatten(2).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


STEMS = ("patch", "conv", "efficientnet_lite0")


def stem_problems(stem: str, patch_size: int) -> list[str]:
    """What is wrong with a ``stem`` choice for ``patch_size`` (empty when nothing is)."""
    if stem not in STEMS:
        return [f"stem must be one of {STEMS}, got {stem!r}"]
    if stem == "efficientnet_lite0" and patch_size != 8:
        return ["stem efficientnet_lite0 needs patch_size 8 (its stride)"]
    if stem == "conv" and (patch_size < 2 or patch_size & (patch_size - 1)):
        return [f"stem conv needs a power-of-two patch_size, got {patch_size}"]
    return []


def stem_layer(config: Any) -> dict[str, Any]:
    """The ``embed_layer`` keyword of :class:`~wsris.backbones.vit.VisionTransformer` for
    ``config.stem`` (none for ``"patch"``, the ViT's own)."""
    if config.stem == "conv":
        return {"embed_layer": partial(ConvStemPatchEmbed, stem_channels=config.conv_stem_channels)}
    if config.stem == "efficientnet_lite0":
        return {"embed_layer": partial(EfficientNetStemPatchEmbed, frozen=config.stem_frozen)}
    return {}
