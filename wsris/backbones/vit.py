"""The Vision Transformer, in plain torch, with timm's parameter names and numerics.

Why not timm itself: ``import timm`` imports torchvision, whose ``ops`` import
``torch._dynamo``; measured, that costs more than importing torch (1.8 s of a 2-second
start-up on the bundled models, see docs/performance.md). Inference only needs a plain
ViT (and the first three stages of EfficientNet-Lite0, :mod:`wsris.backbones.efficientnet`),
so they are built here and timm stays what the training side and the converters use. The
state-dict keys are exactly timm's (``VisionTransformer`` with ``class_token=True`` and
no head), so converted ALBEF checkpoints, timm's pretrained weights and every saved wsris
model load unchanged; ``tests/test_vit.py`` checks names, shapes and outputs against timm.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsMismatchError


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches, one convolution, to ``[B, N, D]``."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, **_: Any) -> None:
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Attention(nn.Module):
    """Multi-head self-attention; ``fused_attn=False`` computes the probabilities
    explicitly (and passes them through ``attn_drop``, where a hook can see them)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused_attn = True
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.norm = nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = self.attn_drop(attn) @ v
        x = self.norm(x.transpose(1, 2).reshape(b, n, c))
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class DropPath(nn.Module):
    """Stochastic depth: in training, drop the whole residual branch of a sample with
    probability ``p`` (and scale the kept ones by ``1 / (1 - p)``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float, norm_layer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Module):
    """ViT with a class token and learned position embeddings (over the class token and
    the patches), no classifier: :meth:`forward_features` gives ``[B, 1 + N, D]`` after
    the final LayerNorm. ``embed_layer`` replaces the patch embedding (it is called with
    ``img_size``, ``patch_size``, ``in_chans`` and ``embed_dim``)."""

    num_prefix_tokens = 1

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] | None = None,
        embed_layer: Callable[..., nn.Module] = PatchEmbed,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.embed_dim = embed_dim
        self.patch_embed = embed_layer(
            img_size=img_size, patch_size=patch_size, in_chans=3, embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(0.0)
        # linearly growing stochastic depth, as timm and the ViT recipes do (plain Python:
        # torch.linspace on the meta device imports sympy, seconds of start-up)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], norm_layer)
            for i in range(depth)
        ))
        self.norm = norm_layer(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's default ViT initialisation: truncated normal (std 0.02) for the position
        # embedding and every Linear, a near-zero class token, zero biases
        if self.pos_embed.device.type == "meta":
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def add_prefix_and_position(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, D]`` -> ``[B, 1 + N, D]``: class token first, position
        embeddings added."""
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_prefix_and_position(self.patch_embed(x))
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def vision_transformer(config: Any) -> VisionTransformer:
    """The ViT of any config with the shared image-encoder fields
    (:mod:`wsris.backbones.fields`): class token kept, no classifier head, the stem that
    ``config.stem`` names."""
    from .stems import stem_layer

    return VisionTransformer(
        img_size=config.image_size,
        patch_size=config.patch_size,
        embed_dim=config.vision_width,
        depth=config.vision_layers,
        num_heads=config.vision_heads,
        mlp_ratio=config.vision_mlp_ratio,
        qkv_bias=True,
        drop_path_rate=config.vision_drop_path,
        norm_layer=partial(nn.LayerNorm, eps=config.vision_layer_norm_eps),
        **stem_layer(config),
    )


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], *, mode: str,
                     num_prefix_tokens: int = 1) -> torch.Tensor:
    """A ``[1, P + g*g, D]`` position table resized to ``grid`` patches (``mode``
    "bicubic" or "bilinear", ``align_corners=False``, no antialiasing), the ``P`` prefix
    (class token) entries kept; the table itself when it already fits.

    The converters keep their sources' choice: ALBEF's checkpoints are resized bicubic
    (as ALBEF's own ``interpolate_pos_embed``), the official SaG code's bilinear.
    """
    from timm.layers import resample_abs_pos_embed  # converters only: timm is slow to import

    patches = pos_embed.shape[1] - num_prefix_tokens
    side = math.isqrt(patches)
    if side * side != patches:
        raise WeightsMismatchError(
            f"the position table has {patches} patch positions: not a square grid"
        )
    return resample_abs_pos_embed(pos_embed, list(grid), [side, side],
                                  num_prefix_tokens=num_prefix_tokens, interpolation=mode,
                                  antialias=False)
