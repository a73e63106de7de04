"""The settings of an official SaG training run that no tensor shape stores.

The official checkpoint keeps the run's command line as ``args`` (an
``argparse.Namespace`` of ``option.py``'s flags). :func:`settings_from_args` reads from it
the slot count and grouping, the slot type, the input size, the head counts, the text
feature's normalisation and the mask threshold, and refuses flags that build a forward
pass the converted model would not compute. Where a checkpoint has no ``args`` (or a flag
is missing from it), the value the official scripts (``train_eval_*.sh``) use is assumed,
and :attr:`OfficialSettings.origin` says so.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from ...errors import InvalidInputError, WeightsMismatchError

ASSUMED = "assumed (the official scripts' value)"
GIVEN = "given"

# ViT size in the official backbone names (``vit_small_patch16_384``) -> heads, as the
# official ``img_encoder_cfg.yaml`` builds them.
VIT_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16}

# Flags whose other values change the forward pass into one this model does not compute
# (values as the official ``option.py`` spells them), with what they would change.
REQUIRED_FLAGS: dict[str, tuple[Any, str]] = {
    "agg_cross_attn_type": ("slot", "aggregation attention softmaxed over the pixels"),
    "agg_pos_enc": ("sine", "another position encoding of the slot attention's inputs"),
    "agg_activation": ("gelu", "another feed-forward activation"),
    "agg_pre_norm": (True, "no pre-norm in the aggregation blocks"),
    "agg_post_norm": (False, "post-norm LayerNorms in the aggregation blocks"),
    "agg_weight_sharing": (True, "a separate aggregation block per iteration"),
    "agg_gumbel_attn": (False, "hard (straight-through) slot attention"),
    "agg_gumbel_last": (False, "hard slot attention in the last iteration"),
    "agg_residual": (False, "a global image feature added to every slot"),
    "agg_gru": (False, "a GRU slot update"),
    "agg_query_self_attns": (0, "self-attention on the initial slots"),
    "agg_self_before_cross_attn": (0, "self-attention on the patch features"),
    "agg_thin_ff": (False, "single-layer feed-forwards"),
    "agg_1x1_mlp": (False, "an MLP patch projection"),
    "agg_last_fc": (True, "no final linear layer on the slots"),
    "slot_cond": (False, "slots conditioned on the text"),
    "txt_pooling": ("cls", "a pooled text feature instead of [CLS]"),
    "cma_self_attn": (False, "self-attention on the slots before fusion"),
    "cma_last_fc": (False, "a linear layer after fusion"),
    "cma_qk_norm": (False, "cosine attention in the fusion"),
    "cma_last_mlp": (False, "an MLP after fusion"),
    "recon_decoder": ("mlp", "a transformer reconstruction decoder"),
    "decoder_self_attn": (False, "self-attention in the reconstruction decoder"),
}


@dataclass
class OfficialSettings:
    """What the converter needs beyond the tensor shapes, and where each value came from
    (``origin``: ``args.FLAG``, ``given`` or :data:`ASSUMED`)."""

    num_slots: int = 36
    slots_per_group: int | None = None  # None: K / Kg (entity slots)
    slot_type: str | None = None  # None: entity, or query when the file holds queries
    image_size: int = 384
    vision_heads: int | None = None  # None: ViT width / 64
    agg_heads: int = 4
    interaction_heads: int = 4
    fusion_heads: int = 4
    text_norm: str = "none"
    threshold: float = 0.5
    dropout: float = 0.1
    # checked against the shapes; None: not recorded
    expected: dict[str, int] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def assumed(self) -> list[str]:
        """The settings no ``args`` flag and no caller gave."""
        return [k for k, v in self.origin.items() if v.startswith("assumed")]


SETTINGS = tuple(f.name for f in fields(OfficialSettings) if f.name not in ("expected", "origin"))


def _flag(args: Any, name: str) -> Any:
    return getattr(args, name, None) if args is not None else None


def settings_from_args(args: Any, given: dict[str, Any] | None = None) -> OfficialSettings:
    """:class:`OfficialSettings` from an official ``args`` namespace (or its ``vars``
    dict, or None), with the caller's ``given`` values (None entries ignored) where
    ``args`` does not record one.

    Raises :class:`WeightsMismatchError` for flags that build another forward pass, and
    :class:`InvalidInputError` for a given value that contradicts ``args``.
    """
    if isinstance(args, dict):  # vars(args), as some forks save it
        args = argparse.Namespace(**{str(k): v for k, v in args.items()})
    if args is not None and not hasattr(args, "__dict__"):
        raise WeightsMismatchError(f"'args' is a {type(args).__name__}, not a namespace")
    unsupported = [
        f"--{name} {_flag(args, name)!r} ({why}; only {want!r} converts)"
        for name, (want, why) in REQUIRED_FLAGS.items()
        if _flag(args, name) is not None and _flag(args, name) != want
    ]
    if unsupported:
        raise WeightsMismatchError(
            "the checkpoint was trained with options this model does not implement: "
            + "; ".join(unsupported)
        )
    s = OfficialSettings()
    read: dict[str, tuple[str, Any]] = {}

    def take(setting: str, flag: str, value: Any = None) -> None:
        value = _flag(args, flag) if value is None else value
        if value is not None:
            read[setting] = (f"args.{flag}", value)

    take("num_slots", "img_num_embeds")
    take("slots_per_group", "cascade_factor")
    query_type = _flag(args, "agg_query_type")
    if query_type is not None and query_type not in ("entity", "random", "query"):
        raise WeightsMismatchError(f"unknown --agg_query_type {query_type!r}")
    take("slot_type", "agg_query_type")
    take("image_size", "crop_size")
    backbone = _flag(args, "img_backbone")
    if backbone is not None:
        size = next((s for s in VIT_HEADS if f"_{s}_" in f"_{backbone}_"), None)
        if not str(backbone).startswith(("vit", "deit")) or size is None:
            raise WeightsMismatchError(f"--img_backbone {backbone!r} is not a ViT this converts")
        take("vision_heads", "img_backbone", VIT_HEADS[size])
    take("agg_heads", "agg_cross_head")
    take("interaction_heads", "agg_latent_head")
    take("fusion_heads", "cma_heads")
    if _flag(args, "txt_l2") is not None:
        take("text_norm", "txt_l2", "l2" if _flag(args, "txt_l2") else "none")
    take("threshold", "pseudo_threshold")
    take("dropout", "dropout")

    for name, value in (given or {}).items():
        if value is None:
            continue
        if name in read and read[name][1] != value:
            raise InvalidInputError(
                f"{name}={value!r} contradicts the checkpoint's {read[name][0]} = "
                f"{read[name][1]!r}; leave it out to use the checkpoint's"
            )
        read.setdefault(name, (GIVEN, value))
    for name in SETTINGS:
        if name in read:
            setattr(s, name, read[name][1])
            s.origin[name] = read[name][0]
        else:
            s.origin[name] = ASSUMED
    s.num_slots, s.image_size = int(s.num_slots), int(s.image_size)

    # recorded sizes the shapes must agree with
    heads_dims = {
        "agg_hidden": ("agg_cross_head", "agg_cross_dim"),
        "interaction_hidden": ("agg_latent_head", "agg_latent_dim"),
        "fusion_hidden": ("cma_heads", "cma_head_dim"),
    }
    for key, (heads, dim) in heads_dims.items():
        if _flag(args, heads) is not None and _flag(args, dim) is not None:
            s.expected[key] = int(_flag(args, heads)) * int(_flag(args, dim))
    depths = (("iterations", "agg_depth"), ("interaction_layers", "agg_self_per_cross_attn"),
              ("vision_layers", "num_layers"), ("dim", "embed_dim"))
    for key, flag in depths:
        if _flag(args, flag) is not None:
            s.expected[key] = int(_flag(args, flag))
    return s
