"""A small BERT encoder whose upper layers cross-attend to image tokens (ALBEF layout).

Transformers' stock ``BertLayer`` only allows cross-attention in decoders, whose
self-attention is causal; ALBEF's fusion layers are not causal. This module is a plain
re-implementation with standard BERT parameter names, so it loads

- ALBEF text encoders (``encoder.layer.N.crossattention.*`` for N >= ``fusion_layer``),
- plain BERT / MiniLM state dicts (``bert.`` prefix optional; pooler, MLM head and the
  ``position_ids`` buffer are dropped; cross-attention weights stay as initialised).

Layers ``0 .. fusion_layer-1`` are text-only; layers ``fusion_layer ..`` add a
cross-attention block (query from text, key/value from image tokens of width
``encoder_width``) between self-attention and the feed-forward block.

Attention is computed explicitly (no fused kernel) so that the post-softmax
probabilities can be returned and differentiated twice (Grad-CAM inside a training
loss needs a double backward through the layers above the Grad-CAM layer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..weights.state_dicts import check_state_dict


@dataclass
class BertConfig:
    """Sizes of a :class:`BertModel`. ``fusion_layer == num_layers`` means text only."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    fusion_layer: int = 12
    encoder_width: int = 768

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )
        if not 0 <= self.fusion_layer <= self.num_layers:
            raise ValueError(
                f"fusion_layer {self.fusion_layer} must lie in [0, num_layers={self.num_layers}]"
            )

    @classmethod
    def from_hf_config(cls, d: Mapping[str, Any], **overrides: Any) -> BertConfig:
        """From a Hugging Face ``config.json`` dict of a ``BertModel`` (text only)."""
        if d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"only hidden_act='gelu' is supported, got {d['hidden_act']!r}")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        kw: dict[str, Any] = dict(
            hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=d["num_attention_heads"],
            intermediate_size=d["intermediate_size"],
            vocab_size=d["vocab_size"],
            max_positions=d["max_position_embeddings"],
            type_vocab_size=d.get("type_vocab_size", 2),
            layer_norm_eps=d.get("layer_norm_eps", 1e-12),
            hidden_dropout=d.get("hidden_dropout_prob", 0.1),
            attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
            fusion_layer=d["num_hidden_layers"],
            encoder_width=d["hidden_size"],
        )
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def of(cls, config: Any, fusion_layer: int | None = None,
           encoder_width: int | None = None) -> BertConfig:
        """The BERT of any config with the shared text-encoder fields
        (:mod:`wsris.backbones.fields`); without ``fusion_layer``, text only."""
        layers = config.text_layers
        return cls(
            hidden_size=config.text_width,
            num_layers=layers,
            num_heads=config.text_heads,
            intermediate_size=config.text_intermediate,
            vocab_size=config.text_vocab_size,
            max_positions=config.text_max_positions,
            type_vocab_size=config.text_type_vocab_size,
            layer_norm_eps=config.text_layer_norm_eps,
            hidden_dropout=config.text_dropout,
            attention_dropout=config.text_dropout,
            fusion_layer=layers if fusion_layer is None else fusion_layer,
            encoder_width=config.text_width if encoder_width is None else encoder_width,
        )


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"text of {length} tokens exceeds max_positions "
                f"{self.position_embeddings.num_embeddings}"
            )
        positions = torch.arange(length, device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(positions)[None]
        )
        return self.dropout(self.LayerNorm(x))


@dataclass
class IndexedImages:
    """Image tokens ``[B_img, N, D]`` plus, for each text of a batch, the row it attends
    to. Cross-attention then projects each image's keys and values once and gathers
    them, instead of projecting a copy per text (training fuses every image with several
    texts: its own, and hard negatives)."""

    tokens: torch.Tensor
    index: torch.Tensor  # [B] long

    def gather(self) -> torch.Tensor:
        """The plain ``[B, N, D]`` equivalent."""
        return self.tokens[self.index]


def _key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, Lk]`` (1 = attend) -> boolean ``[B, 1, 1, Lk]``."""
    if mask is None:
        return None
    return mask.bool()[:, None, None, :]


class BertSelfAttention(nn.Module):
    """Multi-head attention; ``key``/``value`` read ``kv_width``-wide states.

    Split into :meth:`probs` (scores -> post-softmax probabilities, before dropout) and
    :meth:`attend` (dropout, probabilities @ values) so callers can replace the
    probabilities by a leaf tensor (efficient Grad-CAM).
    """

    def __init__(self, cfg: BertConfig, kv_width: int) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.hidden_size // cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.attention_dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def probs(
        self,
        hidden: torch.Tensor,
        context: torch.Tensor | IndexedImages,
        key_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention probabilities ``[B, H, Lq, Lk]`` and the values ``[B', H, Lk, d]``.

        ``context`` (the key/value states) may have batch 1 for a query batch B: keys and
        values are then computed once and broadcast. An :class:`IndexedImages` context
        computes them once per image and gathers one row per query.
        """
        q = self._heads(self.query(hidden))
        if isinstance(context, IndexedImages):
            k = self._heads(self.key(context.tokens))[context.index]
            v = self._heads(self.value(context.tokens))[context.index]
        else:
            k = self._heads(self.key(context))
            v = self._heads(self.value(context))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1), v

    def attend_grouped(self, hidden: torch.Tensor, context: IndexedImages) -> torch.Tensor:
        """What :meth:`probs` then :meth:`attend` give for an :class:`IndexedImages`
        context without a key mask, ``[B, L, D]``, computed without the probabilities: the
        queries of each image's texts are packed along the sequence axis (``[B_img, H,
        M * L, d]``, ``M`` the most texts of one image, short groups zero-padded) and
        attend to that image's keys and values with torch's fused attention. Keys and
        values are neither copied per text nor their gradients scattered back, which on a
        CPU cost more than the attention itself (training fuses every image with several
        texts). Used when no caller needs the probabilities (training without Grad-CAM).
        """
        q = self._heads(self.query(hidden))  # [T, H, L, d]
        t, heads, length, d = q.shape
        index = context.index
        n_img = context.tokens.shape[0]
        counts = torch.bincount(index, minlength=n_img)
        most = int(counts.max())
        order = torch.argsort(index, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(index)  # each text's place within its image's group
        slot[order] = torch.arange(t, device=index.device) - starts[index[order]]
        packed = q.new_zeros(n_img, most, heads, length, d)
        packed = packed.index_put((index, slot), q)
        packed = packed.transpose(1, 2).reshape(n_img, heads, most * length, d)
        k = self._heads(self.key(context.tokens))
        v = self._heads(self.value(context.tokens))
        drop = self.dropout.p if self.training else 0.0
        out = F.scaled_dot_product_attention(packed, k.to(packed.dtype), v.to(packed.dtype),
                                             dropout_p=drop)
        out = out.reshape(n_img, heads, most, length, d).transpose(1, 2)[index, slot]
        return out.transpose(1, 2).reshape(t, length, heads * d)

    def attend(self, probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Dropout on the probabilities, weighted sum of values, heads merged."""
        probs = self.dropout(probs).to(value.dtype)
        out = torch.matmul(probs, value)
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)


class BertSelfOutput(nn.Module):
    """Projection, dropout and residual LayerNorm after an attention block."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    """``self`` (attention) + ``output`` (projection, residual LayerNorm)."""

    def __init__(self, cfg: BertConfig, kv_width: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg, kv_width)
        self.output = BertSelfOutput(cfg)

    def forward(
        self,
        hidden: torch.Tensor,
        context: torch.Tensor | IndexedImages,
        key_mask: torch.Tensor | None,
        need_probs: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the block output and the attention probabilities (before dropout);
        with ``need_probs=False`` an :class:`IndexedImages` context without a key mask
        takes the packed fused path and the probabilities are None."""
        if not need_probs and key_mask is None and isinstance(context, IndexedImages):
            return self.output(self.self.attend_grouped(hidden, context), hidden), None
        probs, value = self.self.probs(hidden, context, key_mask)
        return self.output(self.self.attend(probs, value), hidden), probs


class BertIntermediate(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


@dataclass
class CrossAttentionState:
    """What :meth:`BertLayer.cross_attention_probs` computed, to resume the layer from."""

    hidden: torch.Tensor  # self-attention output: the cross-attention query and residual
    probs: torch.Tensor  # [B, H, L, N_image]
    value: torch.Tensor  # [B or 1, H, N_image, d]


class BertLayer(nn.Module):
    """Self-attention, optional cross-attention to image tokens, feed-forward.

    Masks passed to a layer are boolean key masks ``[B, 1, 1, L]`` (True = attend), as
    :meth:`BertModel.run_layers` builds them from ``[B, L]`` attention masks.
    """

    def __init__(self, cfg: BertConfig, cross_attention: bool) -> None:
        super().__init__()
        self.attention = BertAttention(cfg, cfg.hidden_size)
        self.has_cross_attention = cross_attention
        if cross_attention:
            self.crossattention = BertAttention(cfg, cfg.encoder_width)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.intermediate(x), x)

    def forward(
        self,
        hidden: torch.Tensor,
        text_mask: torch.Tensor | None,
        image: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        need_probs: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the layer output and the cross-attention probabilities (or None: no
        cross-attention, or ``need_probs=False`` took the fused path)."""
        x, _ = self.attention(hidden, hidden, text_mask)
        cross = None
        if self.has_cross_attention:
            if image is None:
                raise ValueError("a fusion layer needs the image tokens")
            x, cross = self.crossattention(x, image, image_mask, need_probs)
        return self.feed_forward(x), cross

    def cross_attention_probs(
        self,
        hidden: torch.Tensor,
        text_mask: torch.Tensor | None,
        image: torch.Tensor,
        image_mask: torch.Tensor | None = None,
    ) -> CrossAttentionState:
        """The first half of :meth:`forward`: up to the cross-attention probabilities."""
        if not self.has_cross_attention:
            raise ValueError("this layer has no cross-attention")
        x, _ = self.attention(hidden, hidden, text_mask)
        probs, value = self.crossattention.self.probs(x, image, image_mask)
        return CrossAttentionState(x, probs, value)

    def resume_from_probs(self, state: CrossAttentionState, probs: torch.Tensor) -> torch.Tensor:
        """The second half of :meth:`forward`, with ``probs`` in place of ``state.probs``."""
        ctx = self.crossattention.self.attend(probs, state.value)
        x = self.crossattention.output(ctx, state.hidden)
        return self.feed_forward(x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            BertLayer(cfg, cross_attention=i >= cfg.fusion_layer) for i in range(cfg.num_layers)
        )


@dataclass
class TextFusionOutput:
    hidden: torch.Tensor  # [B, L, D] last hidden state
    cross_attention: torch.Tensor | None = None  # [B, H, L, N] of the requested layer


class BertModel(nn.Module):
    """Embeddings + encoder; no pooler (ALBEF builds its BERT without one)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def run_layers(
        self,
        hidden: torch.Tensor,
        text_mask: torch.Tensor | None,
        start: int,
        end: int,
        image: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        return_cross_attention: int | None = None,
        fused_attention: bool = True,
    ) -> TextFusionOutput:
        """Run layers ``start .. end-1``; masks are ``[B, L]`` / ``[B, N]`` (1 = attend).
        ``fused_attention=False`` keeps every cross-attention on the explicit
        probabilities path, for a graph that is differentiated twice (torch's fused CPU
        attention has no second derivative)."""
        keys, img_keys = _key_mask(text_mask), _key_mask(image_mask)
        cross = None
        for i in range(start, end):
            need = i == return_cross_attention or not fused_attention
            hidden, probs = self.encoder.layer[i](hidden, keys, image, img_keys, need_probs=need)
            if i == return_cross_attention:
                cross = probs
        return TextFusionOutput(hidden, cross)

    def cross_attention_state(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        layer: int,
        image: torch.Tensor,
        image_mask: torch.Tensor | None = None,
    ) -> CrossAttentionState:
        """Layer ``layer`` up to its cross-attention probabilities (see :class:`BertLayer`)."""
        return self.encoder.layer[layer].cross_attention_probs(
            hidden, _key_mask(attention_mask), image, _key_mask(image_mask)
        )

    def forward_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embeddings and the text-only layers ``0 .. fusion_layer-1``."""
        x = self.embeddings(input_ids)
        return self.run_layers(x, attention_mask, 0, self.config.fusion_layer).hidden

    def forward_fusion(
        self,
        text_hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        image: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        return_cross_attention: int | None = None,
        fused_attention: bool = True,
    ) -> TextFusionOutput:
        """Fusion layers ``fusion_layer ..`` over text states and image tokens.

        ``image`` may have batch 1 for any text batch (one image, several texts).
        ``return_cross_attention`` is an absolute layer index whose post-softmax
        cross-attention probabilities (before dropout) are returned, still in the graph.
        ``fused_attention``: see :meth:`run_layers`.
        """
        cfg = self.config
        if return_cross_attention is not None and not (
            cfg.fusion_layer <= return_cross_attention < cfg.num_layers
        ):
            raise ValueError(
                f"layer {return_cross_attention} has no cross-attention; fusion layers are "
                f"{cfg.fusion_layer}..{cfg.num_layers - 1}"
            )
        return self.run_layers(
            text_hidden,
            attention_mask,
            cfg.fusion_layer,
            cfg.num_layers,
            image,
            image_mask,
            return_cross_attention,
            fused_attention,
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text-only encoding through every layer (only valid without fusion layers)."""
        if self.config.fusion_layer < self.config.num_layers:
            raise ValueError("this encoder has fusion layers: use forward_text/forward_fusion")
        return self.forward_text(input_ids, attention_mask)


# Keys of plain BERT checkpoints that this encoder does not use.
_BERT_UNUSED_PREFIXES = ("pooler.", "cls.")
_BERT_UNUSED_KEYS = ("embeddings.position_ids",)


@dataclass
class BertLoadReport:
    dropped: list[str]  # checkpoint keys not used (pooler, MLM/NSP heads, position_ids)
    initialised: list[str]  # model keys left as initialised (cross-attention only)


def load_bert_weights(model: BertModel, state_dict: Mapping[str, torch.Tensor]) -> BertLoadReport:
    """Load a plain BERT / MiniLM state dict into ``model``.

    Accepts keys with or without the ``bert.`` prefix. Pooler, MLM/NSP heads and the
    ``position_ids`` buffer are dropped; cross-attention weights (absent from plain BERT)
    keep their initialisation. Any other missing or unexpected key, or a shape mismatch,
    raises :class:`~wsris.errors.WeightsMismatchError`.
    """
    clean: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state_dict.items():
        name = key[len("bert.") :] if key.startswith("bert.") else key
        if name.startswith(_BERT_UNUSED_PREFIXES) or name in _BERT_UNUSED_KEYS:
            dropped.append(key)
        else:
            clean[name] = value
    own = model.state_dict()
    initialised = sorted(k for k in set(own) - set(clean) if ".crossattention." in k)
    check_state_dict("BERT weights for the text encoder", own, clean, may_be_missing=initialised)
    model.load_state_dict(clean, strict=False)
    return BertLoadReport(sorted(dropped), initialised)
