"""The TRIS networks (Liu et al. 2023): stage 1 (response map) and stage 2 (segmenter).

Both read a CLIP RN50 backbone (:mod:`.clip_resnet`, :mod:`.clip_text`) under
``backbone.*``; the heads use the official module names, so a converted checkpoint is the
official one with its unused tensors dropped (:mod:`.convert`).

* Stage 1: ``vis_project`` (1x1 conv of c4 to ``hidden_dim``), ``lan_project`` (linear
  of the sentence feature), optional ``attn_fusion`` (:class:`.attention.BilateralPrompt`,
  residual weight 0.1 on both sides, no renormalisation after), then the scaled cosine
  ``exp(logit_scale) * <v, t>`` per pixel, upsampled (bilinear) to the input size and
  passed through ReLU.
* Stage 2: :class:`.attention.PixelAttention` on c2, c3, c4 (residual), four
  ``ConvBNRelu`` reductions (PReLU), a top-down decoder and ``final_seg1``: one logit
  channel upsampled to the input size. The training-only deep-supervision heads
  ``final_seg2..4`` are not built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...strict import from_mapping
from .attention import BilateralPrompt, PixelAttention
from .clip_resnet import ModifiedResNet
from .clip_text import ClipText

#: Residual weight of the bilateral prompt, fixed in the official forward.
FUSION_WEIGHT = 0.1
DECODER = (64, 128, 256, 512)  # stage 2's reduced channels of c1..c4


@dataclass
class TrisConfig:
    """Architecture of one TRIS stage (defaults: the published CLIP-RN50 models)."""

    stage: int = 2
    vision_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    vision_width: int = 64
    embed_dim: int = 1024  # CLIP's joint space: the sentence feature's size
    vocab_size: int = 49408
    context_length: int = 77  # CLIP's position table; TRIS reads the first text_length
    text_length: int = 20
    text_width: int = 512
    text_heads: int = 8
    text_layers: int = 12
    hidden_dim: int = 1024  # stage 1's projection size
    bilateral: bool = True  # stage 1: the bilateral prompt (official attn_multi > 0)
    image_size: int = 320

    def __post_init__(self) -> None:
        self.vision_layers = tuple(self.vision_layers)  # type: ignore[assignment]

    def validate(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage!r}")
        if len(self.vision_layers) != 4 or min(self.vision_layers) < 1:
            raise ValueError("vision_layers must be four block counts >= 1")
        if self.text_length > self.context_length:
            raise ValueError("text_length cannot exceed context_length")
        if self.text_width % self.text_heads:
            raise ValueError("text_width must be a multiple of text_heads")
        if self.image_size % 32:
            raise ValueError("image_size must be a multiple of 32")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["vision_layers"] = list(self.vision_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrisConfig:
        return from_mapping(cls, d, "TRIS architecture", check=cls.validate)

    @classmethod
    def stage1(cls, **overrides: Any) -> TrisConfig:
        """The published stage-1 network (CLIP RN50, hidden 1024, bilateral prompt)."""
        return cls(stage=1, **overrides)

    @classmethod
    def stage2(cls, **overrides: Any) -> TrisConfig:
        """The published stage-2 network (CLIP RN50)."""
        return cls(stage=2, **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> TrisConfig:
        """A small model of the same layout, for tests (vocabulary kept: real tokens)."""
        # text_width 64: CLIP's head count is width // 64, which a converter must infer
        base = dict(vision_layers=(1, 1, 1, 1), vision_width=8, embed_dim=32,
                    text_width=64, text_heads=1, text_layers=1, hidden_dim=16, image_size=64)
        return cls(**{**base, **overrides})


class ConvBNRelu(nn.Module):
    """3x3 convolution (no bias), BatchNorm, PReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Backbone(ClipText):
    """CLIP's layout: the text tower at the top level, the image tower under ``visual``."""

    def __init__(self, cfg: TrisConfig) -> None:
        super().__init__(cfg.vocab_size, cfg.context_length, cfg.text_width, cfg.text_layers,
                         cfg.text_heads, cfg.embed_dim)
        self.visual = ModifiedResNet(cfg.vision_layers, cfg.vision_width)

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ClipText.forward(self, ids)


def upsample(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class TrisModel(nn.Module):
    """One TRIS stage. :meth:`encode_image` once per image, :meth:`localize` per texts."""

    def __init__(self, config: TrisConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.backbone = Backbone(config)
        c1, c2, c3, c4 = self.backbone.visual.channels
        if config.stage == 1:
            self.vis_project = nn.Conv2d(c4, config.hidden_dim, 1)
            self.lan_project = nn.Linear(config.embed_dim, config.hidden_dim)
            self.logit_scale = nn.Parameter(torch.tensor(2.6593))  # log(1/0.07)
            if config.bilateral:
                self.attn_fusion = BilateralPrompt(config.hidden_dim)
        else:
            t = config.text_width
            self.attention2 = PixelAttention(c2, t)
            self.attention3 = PixelAttention(c3, t)
            self.attention4 = PixelAttention(c4, t)
            for i, cin in enumerate((c1, c2, c3, c4), start=1):
                self.add_module(f"reduced_c{i}", ConvBNRelu(cin, DECODER[i - 1]))
            self.output4 = ConvBNRelu(512, 256)
            self.output3 = ConvBNRelu(256, 128)
            self.output2 = ConvBNRelu(128, 64)
            self.output1 = ConvBNRelu(64, 32)
            self.final_seg1 = nn.Sequential(ConvBNRelu(32, 32), nn.Conv2d(32, 1, 1, bias=False))

    def encode_image(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``[1, 3, H, W]`` -> the image side: stage 1 ``(unit-normalised projected c4,)``,
        stage 2 ``(c1, c2, c3, c4)``."""
        feats = self.backbone.visual(pixel_values)
        if self.config.stage == 1:
            vis = self.vis_project(feats[3])
            return (vis / vis.norm(dim=1, keepdim=True),)
        return feats

    def localize(self, image: tuple[torch.Tensor, ...], ids: torch.Tensor,
                 size: tuple[int, int]) -> torch.Tensor:
        """Maps ``[T, 1, H, W]`` at the input size ``size`` for the token ids ``[T, L]``:
        stage 1 ReLU scores, stage 2 logits. Each text is its own batch row."""
        tokens, sentence = self.backbone.encode_text(ids)
        n = ids.shape[0]
        if self.config.stage == 1:
            return self._stage1(image[0].expand(n, -1, -1, -1), sentence, size)
        return self._stage2([f.expand(n, -1, -1, -1) for f in image], tokens, size)

    def _stage1(self, vis: torch.Tensor, sentence: torch.Tensor,
                size: tuple[int, int]) -> torch.Tensor:
        lan = self.lan_project(sentence)
        lan = (lan / lan.norm(dim=-1, keepdim=True))[:, None]  # [T, 1, C]
        if self.config.bilateral:
            new_vis, new_lan = self.attn_fusion(vis, lan)
            vis = vis + FUSION_WEIGHT * new_vis
            lan = lan + FUSION_WEIGHT * new_lan
        score = torch.einsum("tchw,tc->thw", vis, lan[:, 0]) * self.logit_scale.exp()
        return torch.relu(upsample(score[:, None], size))

    def _stage2(self, feats: list[torch.Tensor], tokens: torch.Tensor,
                size: tuple[int, int]) -> torch.Tensor:
        c1, c2, c3, c4 = feats
        lan = tokens.transpose(1, 2)  # [T, width, L]
        d1 = self.reduced_c1(c1)
        d2 = self.reduced_c2(self.attention2(c2, lan) + c2)
        d3 = self.reduced_c3(self.attention3(c3, lan) + c3)
        d4 = self.reduced_c4(self.attention4(c4, lan) + c4)
        x = upsample(self.output4(d4), d3.shape[2:])
        x = upsample(self.output3(x + d3), d2.shape[2:])
        x = upsample(self.output2(x + d2), d1.shape[2:])
        x = self.output1(x + d1)
        return upsample(self.final_seg1(x), size)

    def forward(self, pixel_values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """One image, its texts: ``[1, 3, H, W]``, ``[T, L]`` -> ``[T, 1, H, W]``."""
        return self.localize(self.encode_image(pixel_values), ids,
                             tuple(pixel_values.shape[2:]))
