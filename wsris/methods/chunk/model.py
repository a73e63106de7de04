"""ALBEF-style image-text matching model (Li et al. 2021), the chunk method's base model.

Parameter names follow ALBEF's public checkpoints (``shared/reference/albef.md``), so
converting them is a renaming:

- ``visual_encoder``: a ViT (:mod:`wsris.backbones.vit`, with timm's parameter names;
  ViT-B/16 at 384 px for ALBEF-base),
- ``text_encoder``: :class:`~wsris.backbones.bert.BertModel`, text-only layers then fusion
  layers that cross-attend to the image tokens,
- ``itm_head`` (match = class 1) on the fused text [CLS], ``vision_proj`` /
  ``text_proj`` contrastive projections and the temperature ``temp``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.bert import BertConfig, BertModel, IndexedImages, TextFusionOutput
from ...backbones.fields import CHUNK_EARLIER_NAMES, current_names
from ...backbones.stems import stem_problems
from ...backbones.vit import vision_transformer
from ...strict import from_mapping


@dataclass
class AlbefConfig:
    """Every size of :class:`AlbefModel`. Saved as ``config.json["architecture"]``."""

    image_size: int = 384
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_mlp_ratio: float = 4.0
    vision_layer_norm_eps: float = 1e-6
    vision_drop_path: float = 0.0
    # "patch" (ALBEF), or a departure for small models: "conv" or "efficientnet_lite0"
    # (ImageNet-pretrained when the recipe's init says so); see wsris.backbones.stems
    stem: str = "patch"
    stem_frozen: bool = True
    conv_stem_channels: int = 0  # 0: vision_width // 2
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    text_layer_norm_eps: float = 1e-12
    text_dropout: float = 0.1
    fusion_layer: int = 6
    text_vocab_size: int = 30522
    text_max_positions: int = 512
    text_type_vocab_size: int = 2
    embed_dim: int = 256
    temp: float = 0.07

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "image_size", "patch_size", "vision_width", "vision_layers", "vision_heads",
            "text_width", "text_layers", "text_heads", "text_intermediate", "text_vocab_size",
            "text_max_positions", "text_type_vocab_size", "embed_dim",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))
        problems += stem_problems(self.stem, self.patch_size)
        if self.image_size % self.patch_size:
            problems.append(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.vision_width % self.vision_heads:
            problems.append("vision_width must be a multiple of vision_heads")
        if self.text_width % self.text_heads:
            problems.append("text_width must be a multiple of text_heads")
        if not 0 <= self.fusion_layer < self.text_layers:
            problems.append(
                f"fusion_layer {self.fusion_layer} must lie in [0, text_layers={self.text_layers})"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def base(cls) -> AlbefConfig:
        """ALBEF-base for grounding: ViT-B/16 at 384 px + BERT-base, fusion from layer 6."""
        return cls()

    @classmethod
    def tiny(cls) -> AlbefConfig:
        """A few-hundred-kilobyte model for CPU tests (4x4 patch grid, 4 text layers)."""
        return cls(
            image_size=32,
            patch_size=8,
            vision_width=32,
            vision_layers=4,
            vision_heads=2,
            text_width=32,
            text_layers=4,
            text_heads=2,
            text_intermediate=64,
            fusion_layer=2,
            text_max_positions=64,
            embed_dim=16,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlbefConfig:
        """Build from a ``config.json["architecture"]`` dict; unknown keys are an error.
        Earlier field names are read (:mod:`wsris.backbones.fields`)."""
        return from_mapping(cls, cls.current_names(d), "ALBEF architecture")

    @staticmethod
    def current_names(d: dict[str, Any]) -> dict[str, Any]:
        """``d`` with the earlier spellings of its fields replaced by today's."""
        return current_names(d, CHUNK_EARLIER_NAMES, "ALBEF architecture")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def grid_size(self) -> int:
        """Patches per side (24 for ALBEF-base at 384 px)."""
        return self.image_size // self.patch_size

    @property
    def default_gradcam_layer(self) -> int:
        """Text layer whose cross-attention Grad-CAM reads: 8 (third fusion layer) for base.

        Never the last layer when avoidable: there only [CLS] reaches the ITM head, so
        every word's gradient (and map) would be zero.
        """
        return max(self.fusion_layer, min(self.fusion_layer + 2, self.text_layers - 2))

    @property
    def default_affinity_layer(self) -> int:
        """Visual block for the affinity refinement: 9 of 0..11 for base."""
        return (3 * self.vision_layers) // 4

    def bert_config(self) -> BertConfig:
        return BertConfig.of(self, fusion_layer=self.fusion_layer, encoder_width=self.vision_width)


@dataclass
class VisionOutput:
    tokens: torch.Tensor  # [B, 1 + N, D] after the final LayerNorm
    attention: torch.Tensor | None = None  # [B, heads, 1 + N, 1 + N] post-softmax, float32


@dataclass
class CrossAttentionForward:
    """What :meth:`AlbefModel.forward_with_cross_attention` returns."""

    attention: torch.Tensor  # [T, heads, L, 1+N], requires grad
    itm_logits: torch.Tensor  # [T, 2], a function of ``attention``


def vit_attention_probs(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Post-softmax self-attention probabilities of a ViT ``Attention`` for input ``x``.

    The ViT computes attention with a fused kernel that never materialises the
    probabilities (and skips ``attn_drop``), so they are recomputed here from the
    module's own ``qkv``, ``q_norm``/``k_norm`` and ``scale``: one extra projection for
    one block. Returned in float32, before dropout.
    """
    b, n, _ = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    with torch.autocast(device_type=x.device.type, enabled=False):  # scores in float32
        scores = (q.float() * attn.scale) @ k.float().transpose(-2, -1)
        return scores.softmax(dim=-1)


class AlbefModel(nn.Module):
    """ViT image encoder + BERT text/fusion encoder + ITM and contrastive heads."""

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__()
        self.config = config
        self.visual_encoder = vision_transformer(config)
        self.text_encoder = BertModel(config.bert_config())
        self.vision_proj = nn.Linear(config.vision_width, config.embed_dim)
        self.text_proj = nn.Linear(config.text_width, config.embed_dim)
        self.itm_head = nn.Linear(config.text_width, 2)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))

    # -- encoders ---------------------------------------------------------------------

    def encode_image(
        self,
        pixel_values: torch.Tensor,
        attention_block: int | None = None,
        stem_features: torch.Tensor | None = None,
    ) -> VisionOutput:
        """Image tokens ``[B, 1+N, D]``; with ``attention_block`` also that block's
        post-softmax self-attention ``[B, heads, 1+N, 1+N]`` from the same pass.
        ``stem_features``: the frozen stem's output for ``pixel_values``, stored earlier
        (training reads them from :mod:`wsris.training.stem_cache`); the stem is skipped."""
        vit = self.visual_encoder
        depth = len(vit.blocks)
        if attention_block is not None and not 0 <= attention_block < depth:
            raise ValueError(f"attention_block {attention_block} not in [0, {depth})")
        if stem_features is None:
            tokens = vit.patch_embed(pixel_values)
        else:
            tokens = vit.patch_embed.tokens_from_features(stem_features)
        x = vit.add_prefix_and_position(tokens)
        probs = None
        for i, block in enumerate(vit.blocks):
            if i == attention_block:
                probs = vit_attention_probs(block.attn, block.norm1(x))
            x = block(x)
        return VisionOutput(vit.norm(x), probs)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text-only layers: ``[T, L, D]``."""
        return self.text_encoder.forward_text(input_ids, attention_mask)

    def fuse(
        self,
        text_hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        image_embeds: torch.Tensor | IndexedImages,
        return_cross_attention: int | None = None,
        fused_attention: bool = True,
    ) -> TextFusionOutput:
        """Fusion layers. ``image_embeds`` may have batch 1 for several texts.

        ``return_cross_attention``: absolute text-layer index whose cross-attention
        probabilities ``[T, heads, L, 1+N]`` (before dropout, in the graph) are returned.
        ``fused_attention=False``: no layer takes torch's fused attention (for a graph
        that is differentiated twice; see ``BertModel.run_layers``).
        """
        return self.text_encoder.forward_fusion(
            text_hidden, attention_mask, image_embeds, None, return_cross_attention,
            fused_attention,
        )

    def itm_logits(self, fused_hidden: torch.Tensor) -> torch.Tensor:
        """ITM logits ``[T, 2]`` from the fused text [CLS]; class 1 = match."""
        return self.itm_head(fused_hidden[:, 0])

    def forward_with_cross_attention(
        self,
        text_hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        image_embeds: torch.Tensor,
        layer: int,
        differentiable: bool = False,
    ) -> CrossAttentionForward:
        """ITM logits with layer ``layer``'s cross-attention exposed for a gradient: the
        hook Grad-CAM (:mod:`wsris.methods.chunk.gradcam`) uses instead of driving the layers.

        Returns the post-softmax cross-attention probabilities ``[T, heads, L, 1+N]``
        (before dropout) and the ITM logits ``[T, 2]`` computed from them, so
        ``torch.autograd.grad(logits[:, 1].sum(), attention)`` is the gradient Grad-CAM
        needs. ``differentiable=False`` (inference): the layers below ``layer`` run under
        ``no_grad`` and the attention is a leaf, so a backward touches only the layers
        above. ``True`` (training): one ordinary forward, everything in the graph.
        """
        cfg = self.config
        if not cfg.fusion_layer <= layer < cfg.text_layers:
            raise ValueError(
                f"gradcam layer {layer} has no cross-attention; fusion layers are "
                f"{cfg.fusion_layer}..{cfg.text_layers - 1}"
            )
        if differentiable:  # the chunk losses differentiate this graph twice
            fused = self.fuse(text_hidden, attention_mask, image_embeds,
                              return_cross_attention=layer, fused_attention=False)
            assert fused.cross_attention is not None
            return CrossAttentionForward(fused.cross_attention, self.itm_logits(fused.hidden))
        bert = self.text_encoder
        image_embeds = image_embeds.detach()
        with torch.no_grad():
            below = bert.run_layers(
                text_hidden.detach(), attention_mask, cfg.fusion_layer, layer, image_embeds
            ).hidden
            state = bert.cross_attention_state(below, attention_mask, layer, image_embeds)
        probs = state.probs.detach().float().requires_grad_(True)
        with torch.enable_grad():
            hidden = bert.encoder.layer[layer].resume_from_probs(state, probs)
            hidden = bert.run_layers(
                hidden, attention_mask, layer + 1, bert.config.num_layers, image_embeds
            ).hidden
            return CrossAttentionForward(probs, self.itm_logits(hidden))

    def contrastive_features(
        self, image_embeds: torch.Tensor, text_hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised ``vision_proj``/``text_proj`` of the image and text [CLS]."""
        img = F.normalize(self.vision_proj(image_embeds[:, 0]), dim=-1)
        txt = F.normalize(self.text_proj(text_hidden[:, 0]), dim=-1)
        return img, txt

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ITM logits ``[T, 2]`` for images ``[1 or T, 3, H, W]`` and texts ``[T, L]``."""
        image = self.encode_image(pixel_values).tokens
        text = self.encode_text(input_ids, attention_mask)
        return self.itm_logits(self.fuse(text, attention_mask, image).hidden)
