"""The parts Shatter and Gather is built from: output records, attention blocks, slot
attention and its initialiser, the broadcast decoder, the modality fusion, the encoders.

Assembled into the model in :mod:`wsris.methods.sag.model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import (
    SLOT_INITS,
    SagConfig,
)

# ----------------------------------------------------------------------------------------
# Output records
# ----------------------------------------------------------------------------------------


@dataclass
class ImageFeatures:
    """Output of :meth:`SagModel.encode_image`."""

    patch_tokens: torch.Tensor  # [B, N, vision_width] last ViT block (after its final norm)
    features: torch.Tensor  # [B, N, D] projected tokens + sine position encoding
    grid: tuple[int, int]  # (h, w), N = h * w
    stem_features: torch.Tensor | None = None  # [B, N, C] a pretrained stem's own output


@dataclass
class SlotOutput:
    """Output of :meth:`SagModel.discover`."""

    slots: torch.Tensor  # [B, K, D] entity embeddings Phi(x)
    a_slot: torch.Tensor  # [B, K, N] A^slot of the last iteration, heads averaged, float32
    grid: tuple[int, int]
    # for SagModel.split_slots: the slot states before the slot head, the aggregation's
    # values [B, H, N, dh], and which of K rows are real slots ([B, K] bool, None: all;
    # split slots pad each image's pieces to the batch's largest count)
    state: torch.Tensor | None = None
    values: torch.Tensor | None = None
    mask: torch.Tensor | None = None


@dataclass
class SlotFusionOutput:
    """Output of :meth:`SagModel.fuse` for every (image, text) pair."""

    z: torch.Tensor  # [B, T, D] cross-modal embeddings, L2-normalised, float32
    a_fuse: torch.Tensor  # [B, T, K] A^fuse, softmax over slots, heads averaged, float32


@dataclass
class SagOutput:
    """Output of :meth:`SagModel.forward` (training): everything the losses need."""

    z: torch.Tensor  # [B_img, B_txt, D]
    text: torch.Tensor  # [B_txt, D] text features, the C^3 target (not yet detached)
    a_fuse: torch.Tensor  # [B_img, B_txt, K]
    a_slot: torch.Tensor  # [B_img, K, N]
    slots: torch.Tensor  # [B_img, K, D]
    recon: torch.Tensor  # [B_img, N, F]
    recon_target: torch.Tensor  # [B_img, N, F], detached
    recon_splits: list[tuple[str, int]]
    logit_scale: torch.Tensor  # scalar
    grid: tuple[int, int]
    entity_mask: torch.Tensor | None = None  # [B_img, K] real entities (split slots)


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------


def sine_position_encoding_2d(
    height: int, width: int, dim: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalised 2-D sine position encoding, ``[height * width, dim]`` float32.

    Half of the channels encode the row, half the column (row first). Positions
    1..n are scaled to (0, 2*pi]; channel pair ``(2i, 2i+1)`` holds ``sin`` / ``cos`` of
    ``pos / 10000^(2i / (dim/2))``.
    """
    if dim % 4:
        raise ValueError("sine position encoding needs dim divisible by 4")
    half = dim // 2
    eps = 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps)
    y, x = y * 2 * math.pi, x * 2 * math.pi
    i = torch.arange(half, dtype=torch.float32, device=device)
    freq = 10000.0 ** (2 * torch.div(i, 2, rounding_mode="floor") / half)

    def enc(p: torch.Tensor) -> torch.Tensor:
        a = p[:, None] / freq  # [n, half]
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=-1).flatten(1)

    ey, ex = enc(y), enc(x)  # [h, half], [w, half]
    pos = torch.cat(
        (ey[:, None, :].expand(height, width, half), ex[None, :, :].expand(height, width, half)),
        dim=-1,
    )
    return pos.reshape(height * width, dim)


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class MultiHeadAttention(nn.Module):
    """Softmax attention over the keys; q/k/v without bias, output projection with bias.

    ``forward`` returns the output and the attention probabilities ``[B, H, Q, K]``
    (float32). Softmax is computed in float32 under autocast.
    """

    def __init__(
        self, query_dim: int, context_dim: int, hidden: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.to_q = nn.Linear(query_dim, hidden, bias=False)
        self.to_k = nn.Linear(context_dim, hidden, bias=False)
        self.to_v = nn.Linear(context_dim, hidden, bias=False)
        self.to_out = nn.Linear(hidden, query_dim)
        self.drop = nn.Dropout(dropout)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, H*dh] -> [B, H, L, dh]."""
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``mask`` ``[B, K]`` bool: the context entries that may be attended to."""
        q, k, v = (
            self.split(self.to_q(x)),
            self.split(self.to_k(context)),
            self.split(self.to_v(context)),
        )
        logits = (q @ k.transpose(-1, -2)).float() * self.head_dim**-0.5
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = logits.softmax(dim=-1)
        out = attn.to(v.dtype) @ v  # [B, H, Q, dh]
        out = out.transpose(1, 2).flatten(2)
        return self.drop(self.to_out(out)), attn


class SlotAttentionBlock(nn.Module):
    """The aggregation block (Eq. 3-4 plus the residual MLP), shared over iterations.

    Pre-norm on the slots and on the inputs. Logits ``k(x) q(S)^T / sqrt(dh)`` are soft-
    maxed over the SLOT axis (slots compete for pixels, giving ``A^slot``), then each slot's
    column is l1-normalised over the pixels, ``A / (sum_n A + eps)``, so that the update is
    a weighted mean of ``v(x)``; ``S <- S + W_o(update)``, then ``S <- S + MLP(LN(S))``.
    A slot whose attention mass is small against ``eps`` gets a proportionally smaller
    update (``eps`` is ``SagConfig.slot_attention_eps``; the official code's is 1e-7).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        heads: int,
        mlp_ratio: int,
        dropout: float,
        eps: float = 1e-8,
    ):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.eps = eps  # added to a slot's attention mass before the l1 renormalisation
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_inputs = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, hidden, bias=False)
        self.to_k = nn.Linear(dim, hidden, bias=False)
        self.to_v = nn.Linear(dim, hidden, bias=False)
        self.to_out = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio * dim, dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def project_inputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the (fixed) inputs, computed once for all iterations."""
        x = self.norm_inputs(inputs)
        return self._split(self.to_k(x)), self._split(self.to_v(x))

    def forward(
        self, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the updated slots and ``A^slot`` ``[B, H, K, N]`` (float32)."""
        q = self._split(self.to_q(self.norm_slots(slots)))  # [B, H, K, dh]
        logits = (q @ keys.transpose(-1, -2)).float() * self.head_dim**-0.5  # [B, H, K, N]
        attn = logits.softmax(dim=2)  # over the slots
        weights = attn / (attn.sum(dim=-1, keepdim=True) + self.eps)  # l1 over the pixels
        upd = (weights.to(values.dtype) @ values).transpose(1, 2).flatten(2)  # [B, K, Dh]
        return self.update(slots, upd), attn

    def update(self, slots: torch.Tensor, weighted: torch.Tensor) -> torch.Tensor:
        """``S + W_o(update)``, then the residual MLP; ``weighted`` ``[B, K, Dh]`` is the
        attention-weighted mean of the values, heads concatenated."""
        slots = slots + self.drop(self.to_out(weighted))
        return slots + self.mlp(self.norm_mlp(slots))


class TransformerLayer(nn.Module):
    """Pre-norm self-attention transformer layer (the interaction block's ``SA``)."""

    def __init__(self, dim: int, hidden: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, dim, hidden, heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio * dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm_attn(x)
        x = x + self.attn(h, h, mask)[0]
        return x + self.mlp(self.norm_mlp(x))

    def zero_residuals(self) -> TransformerLayer:
        """Zero the last projection of both branches: the layer starts as the identity
        (for a layer added to a trained model)."""
        for layer in (self.attn.to_out, self.mlp.fc2):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        return self


class GroupInteraction(nn.Module):
    """Eq. 5: self-attention among the ``Ks`` slots of each Gaussian group only.

    One set of weights is applied to every group (groups become batch entries). Slots are
    laid out group-major: slot ``g * Ks + s`` is sample ``s`` of Gaussian ``g``.
    """

    def __init__(self, config: SagConfig) -> None:
        super().__init__()
        self.slots_per_group = config.slots_per_group
        self.layers = nn.ModuleList(
            TransformerLayer(
                config.dim,
                config.interaction_hidden,
                config.interaction_heads,
                config.mlp_ratio,
                config.dropout,
            )
            for _ in range(config.interaction_layers)
        )

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        b, k, d = slots.shape
        x = slots.reshape(b * (k // self.slots_per_group), self.slots_per_group, d)
        for layer in self.layers:
            x = layer(x)
        return x.reshape(b, k, d)


class SlotInitializer(nn.Module):
    """Initial slots ``S^0`` of the three types of paper Table 3.

    * ``entity``: ``Kg`` Gaussians ``N(mu_g, diag(sigma_g))`` with learnable ``mu`` and
      ``log_sigma`` (log of the variance, as the paper's ``diag(sigma)``), ``Ks`` samples
      each, group-major;
    * ``random``: one learnable Gaussian, ``K`` samples;
    * ``query``: ``K`` learnable embeddings (no noise).

    ``mode="mean"`` uses the Gaussian means without noise (deterministic); ``"sample"``
    draws noise from ``generator`` if given (created on the CPU, so results do not depend
    on the device), else from the global RNG on the slots' device.
    """

    def __init__(self, config: SagConfig) -> None:
        super().__init__()
        self.slot_type = config.slot_type
        self.kg, self.ks, d = config.num_groups, config.slots_per_group, config.dim
        self.dim = d
        # nn.init.normal_ (the same draws as torch.randn * std) is what loading skips on
        # the meta device, see wsris.api.build_for_loading
        if self.slot_type == "query":
            self.queries = nn.Parameter(nn.init.normal_(torch.empty(self.kg * self.ks, d),
                                                        std=d**-0.5))
        else:
            n = self.kg if self.slot_type == "entity" else 1
            self.mu = nn.Parameter(nn.init.normal_(torch.empty(1, n, d), std=d**-0.5))
            # variance about 1/D: noise on the same scale as the means
            self.log_sigma = nn.Parameter(torch.full((1, n, d), -math.log(d)))

    def forward(
        self,
        batch: int,
        mode: str = "sample",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        k = self.kg * self.ks
        if self.slot_type == "query":
            return self.queries.unsqueeze(0).expand(batch, k, self.dim)
        if mode not in SLOT_INITS:
            raise ValueError(f"slot init mode must be one of {SLOT_INITS}, got {mode!r}")
        reps = self.ks if self.slot_type == "entity" else k
        mu = self.mu.repeat_interleave(reps, dim=1).expand(batch, k, self.dim)
        if mode == "mean":
            if self.slot_type == "random":
                raise ValueError("slot_init='mean' makes every random slot identical; use 'sample'")
            return mu
        std = (0.5 * self.log_sigma).exp().repeat_interleave(reps, dim=1)
        if generator is not None:
            noise = torch.randn(batch, k, self.dim, generator=generator)
            noise = noise.to(device=mu.device, dtype=mu.dtype)
        else:
            noise = torch.randn(batch, k, self.dim, device=mu.device, dtype=mu.dtype)
        return mu + std * noise


class BroadcastDecoder(nn.Module):
    """Spatial-broadcast decoder (appendix C): each slot is copied to the ``N`` token
    positions, a position encoding is added, a ``decoder_layers``-layer ReLU MLP outputs
    ``F + 1`` channels, the extra one is softmaxed over slots into mixing weights and the
    reconstruction is the weighted sum over slots. With ``decoder_mixing="attention"``
    (departure) the mixing weights are ``A^slot`` and the MLP outputs ``F`` channels.
    """

    def __init__(self, config: SagConfig) -> None:
        super().__init__()
        d, h = config.dim, config.decoder_hidden
        self.dim = d
        self.pos_type = config.decoder_pos
        self.mixing = config.decoder_mixing
        self.out_dim = sum(w for _, w in config.recon_splits)
        if self.pos_type == "learned":
            self.pos = nn.Module()
            self.pos.row_embed = nn.Embedding(config.decoder_max_grid, d // 2)
            self.pos.col_embed = nn.Embedding(config.decoder_max_grid, d // 2)
        layers: list[nn.Module] = []
        width = d
        for _ in range(config.decoder_layers - 1):
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        extra = 1 if self.mixing == "alpha" else 0
        layers.append(nn.Linear(width, self.out_dim + extra))
        self.mlp = nn.Sequential(*layers)

    def position(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        """``[N, D]`` position encoding of the token grid."""
        h, w = grid
        if self.pos_type == "sine":
            return sine_position_encoding_2d(h, w, self.dim, device=device)
        col = self.pos.col_embed(torch.arange(w, device=device))  # [w, D/2]
        row = self.pos.row_embed(torch.arange(h, device=device))  # [h, D/2]
        pos = torch.cat(
            (col[None].expand(h, w, -1), row[:, None].expand(h, w, -1)), dim=-1
        )  # column first, as the official learned table
        return pos.reshape(h * w, self.dim)

    def forward(
        self,
        slots: torch.Tensor,
        grid: tuple[int, int],
        a_slot: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the reconstruction ``[B, N, F]`` and the mixing weights ``[B, K, N]``."""
        pos = self.position(grid, slots.device).to(slots.dtype)  # [N, D]
        x = slots[:, :, None, :] + pos[None, None]  # [B, K, N, D]
        out = self.mlp(x)
        if self.mixing == "alpha":
            feat, alpha = out[..., :-1], out[..., -1].float().softmax(dim=1)
        else:
            if a_slot is None:
                raise ValueError("decoder_mixing='attention' needs a_slot")
            feat, alpha = out, a_slot.float()
        recon = torch.einsum("bknf,bkn->bnf", feat.float(), alpha)
        return recon, alpha


def build_vit(config: SagConfig) -> nn.Module:
    """The ViT (:mod:`wsris.backbones.vit`, timm's parameter names) with the sizes of
    ``config``, class token kept (it takes part in attention as in the pretrained ViT) and
    no classifier head."""
    from ...backbones.vit import vision_transformer

    return vision_transformer(config)


def build_text_encoder(config: SagConfig) -> nn.Module:
    """A text-only BERT (``wsris.backbones.bert``: standard Hugging Face parameter names, no
    pooler, no fusion layers)."""
    from ...backbones.bert import BertConfig, BertModel

    return BertModel(BertConfig.of(config))


def patchify(pixel_values: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, 3, H, W]`` -> ``[B, (H/p)*(W/p), 3*p*p]`` (row-major tokens, channel-last
    within a patch)."""
    b, c, h, w = pixel_values.shape
    x = pixel_values.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


class ModalityFusion(nn.Module):
    """Eq. 6-7: ``z = CA(slots; text) / ||CA||`` with ``CA`` a pre-norm transformer layer
    (cross-attention with the text as the single query, then a feed-forward), and
    ``A^fuse`` its attention over the slots, heads averaged."""

    def __init__(self, config: SagConfig) -> None:
        super().__init__()
        d = config.dim
        self.norm_query = nn.LayerNorm(d)
        self.norm_context = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(
            d, d, config.fusion_hidden, config.fusion_heads, config.dropout
        )
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = FeedForward(d, config.mlp_ratio * d, config.dropout)

    def forward(
        self, slots: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> SlotFusionOutput:
        """``mask`` ``[B, K]`` bool: the real slots of each image (padding gets no
        attention); ``None``: every slot is real."""
        attn = self.attn
        b, t = slots.shape[0], text.shape[0]
        hd, nh = attn.head_dim, attn.heads
        q = attn.to_q(self.norm_query(text)).view(t, nh, hd)  # [T, H, dh]
        ctx = self.norm_context(slots)
        k = attn.split(attn.to_k(ctx))  # [B, H, K, dh]
        v = attn.split(attn.to_v(ctx))
        logits = torch.einsum("thd,bhkd->bthk", q, k).float() * hd**-0.5
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, None, :].to(logits.device), float("-inf"))
        probs = logits.softmax(dim=-1)  # over the slots
        out = torch.einsum("bthk,bhkd->bthd", probs.to(v.dtype), v).reshape(b, t, nh * hd)
        x = text.unsqueeze(0) + attn.drop(attn.to_out(out))  # [B, T, D]
        x = x + self.mlp(self.norm_mlp(x))
        z = F.normalize(x.float(), dim=-1)
        return SlotFusionOutput(z=z, a_fuse=probs.mean(dim=2))
