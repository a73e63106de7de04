"""Convert ALBEF's public checkpoints (salesforce/ALBEF) to a wsris model folder.

Two layouts (``shared/reference/albef.md``):

- ``grounding``: ``refcoco.pth``, a plain state dict; text keys ``text_encoder.*``.
- ``pretrain``: ``ALBEF.pth`` / ``ALBEF_4M.pth``, a dict whose ``model`` holds the state
  dict; text keys ``text_encoder.bert.*``; a 16x16 (256 px) position grid.

Unused keys are dropped by name, and only these (each group is listed in the output
``config.json`` under ``source.dropped``):

- ``momentum``: ``visual_encoder_m.*``, ``text_encoder_m.*``, ``vision_proj_m.*``,
  ``text_proj_m.*`` (momentum-distillation copies);
- ``queues``: ``image_queue``, ``text_queue``, ``queue_ptr``, ``idx_queue``;
- ``mlm_head``: ``text_encoder.cls.*`` (masked-language-model head);
- ``position_ids``: ``text_encoder[.bert].embeddings.position_ids``, a persistent
  ``arange`` buffer of the Hugging Face BERT that ALBEF's code is built on.

Everything else is renamed (``text_encoder.bert.`` -> ``text_encoder.``), the position
grid is resized bicubically when it differs from the target image size, and the result
must fill the model exactly: any missing or unexpected key or shape mismatch is a
:class:`~wsris.errors.WeightsMismatchError`. Files are read with
``torch.load(weights_only=True)``: no code in a checkpoint is ever run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ...backbones.vit import resize_pos_embed
from ...errors import InvalidInputError, WeightsMismatchError
from ...weights.checksums import sha256_file
from ...weights.state_dicts import check_state_dict, conversion_paths, fitted_tensors
from ...weights.torch_files import read_torch_checkpoint
from .model import AlbefConfig, AlbefModel

log = logging.getLogger(__name__)

Variant = Literal["grounding", "pretrain"]
VARIANTS = ("grounding", "pretrain")

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]

UNUSED_PREFIXES: dict[str, tuple[str, ...]] = {
    "momentum": ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m."),
    "mlm_head": ("text_encoder.cls.",),
}
UNUSED_KEYS: dict[str, tuple[str, ...]] = {
    "queues": ("image_queue", "text_queue", "queue_ptr", "idx_queue"),
    "position_ids": (
        "text_encoder.embeddings.position_ids",
        "text_encoder.bert.embeddings.position_ids",
    ),
}
# Groups whose presence marks a pretraining checkpoint.
_PRETRAIN_ONLY = ("momentum", "queues", "mlm_head")
BERT_PREFIX = "text_encoder.bert."


@dataclass
class ConversionReport:
    variant: str
    dropped: dict[str, list[str]] = field(default_factory=dict)  # group -> keys
    renamed: int = 0  # keys that lost the ``bert.`` prefix
    position_grid: tuple[int, int] | None = None  # (from, to) patches per side if resized


def unused_group(key: str) -> str | None:
    """The documented group an unused checkpoint key belongs to, or None if it is used."""
    for group, prefixes in UNUSED_PREFIXES.items():
        if key.startswith(prefixes):
            return group
    for group, keys in UNUSED_KEYS.items():
        if key in keys:
            return group
    return None


def detect_variant(checkpoint: Mapping[str, Any]) -> Variant:
    """``pretrain`` if the file wraps its weights in ``model`` or carries pretraining-only
    keys (momentum copies, queues, MLM head, ``bert.`` prefix); else ``grounding``."""
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        return "pretrain"
    for key in checkpoint:
        if key.startswith(BERT_PREFIX) or unused_group(key) in _PRETRAIN_ONLY:
            return "pretrain"
    return "grounding"


def map_albef_state_dict(
    checkpoint: Mapping[str, Any],
    config: AlbefConfig,
    variant: Variant | None = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """ALBEF checkpoint (either layout) -> wsris state dict for ``config``, plus a report.

    Raises :class:`WeightsMismatchError` on a wrong variant, missing/unexpected keys or
    shape mismatches.
    """
    detected = detect_variant(checkpoint)
    if variant is not None:
        if variant not in VARIANTS:
            raise InvalidInputError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant != detected:
            raise WeightsMismatchError(
                f"this checkpoint has the {detected} layout, not {variant}: "
                + (
                    "it wraps its weights in 'model' and/or carries momentum copies, queues or "
                    "the MLM head (ALBEF.pth / ALBEF_4M.pth)"
                    if detected == "pretrain"
                    else "it is a plain state dict without pretraining keys (refcoco.pth)"
                )
            )
    state = checkpoint["model"] if "model" in checkpoint else checkpoint
    if not isinstance(state, Mapping):
        raise WeightsMismatchError("checkpoint holds no state dict")
    report = ConversionReport(variant=detected)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        group = unused_group(key)
        if group is not None:
            report.dropped.setdefault(group, []).append(key)
            continue
        if not isinstance(value, torch.Tensor):
            raise WeightsMismatchError(f"checkpoint entry {key!r} is not a tensor")
        name = key
        if key.startswith(BERT_PREFIX):
            name = "text_encoder." + key[len(BERT_PREFIX) :]
            report.renamed += 1
        if name in out:
            raise WeightsMismatchError(f"checkpoint has {name!r} both with and without 'bert.'")
        out[name] = value.float() if value.is_floating_point() else value

    pos_key = "visual_encoder.pos_embed"
    if pos_key in out and out[pos_key].dim() == 3:
        old = math.isqrt(out[pos_key].shape[1] - 1)
        if old != config.grid_size:
            # bicubic, as ALBEF's own interpolate_pos_embed
            grid = (config.grid_size, config.grid_size)
            out[pos_key] = resize_pos_embed(out[pos_key], grid, mode="bicubic")
            report.position_grid = (old, config.grid_size)

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in AlbefModel(config).state_dict().items()}
    check_state_dict("ALBEF checkpoint", expected, out)
    return out, report


def albef_model_config(config: AlbefConfig, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` of a converted ALBEF model."""
    return {
        "method": "chunk",
        "architecture": config.to_dict(),
        "preprocessing": {
            "size": [config.image_size, config.image_size],
            "mean": MEAN,
            "std": STD,
            "interpolation": "bicubic",
        },
        # Grounding.py's Grad-CAM pass tokenizes with no max_length: the text encoder's
        # own position limit is the only cut (pre_caption's 30 words come first).
        "text": {"style": "albef", "max_words": 30, "max_length": config.text_max_positions},
        "inference": {
            "threshold": 0.3,
            "stages": ["gradcam", "affinity", "proposals"],
            "gradcam_layer": config.default_gradcam_layer,
            "affinity_layer": config.default_affinity_layer,
            "proposal_tau": 0.3,
        },
        "source": source or {},
    }


def convert_albef(
    src: Path | str,
    out_dir: Path | str,
    variant: Variant | None = None,
    config: AlbefConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert ``refcoco.pth`` / ``ALBEF.pth`` / ``ALBEF_4M.pth`` into ``out_dir``.

    Writes ``config.json`` and ``model.safetensors`` and returns ``out_dir``. ``variant``
    (``grounding``/``pretrain``) is detected when None and checked when given.
    ``config`` is the target architecture (ALBEF-base at 384 px by default).
    """
    from safetensors.torch import save_file

    src, out_dir = conversion_paths(src, out_dir, overwrite)
    config = config or AlbefConfig.base()
    checkpoint = read_torch_checkpoint(src)
    state, report = map_albef_state_dict(checkpoint, config, variant)
    for group, keys in report.dropped.items():
        log.info("dropped %d %s key(s): %s", len(keys), group, ", ".join(keys))

    # Strict load into a meta-device model (no allocation) proves the keys fit exactly.
    tensors = fitted_tensors(AlbefModel, config, state)

    source = {
        "format": "albef",
        "variant": report.variant,
        "file": src.name,
        "sha256": sha256_file(src),
        "size": src.stat().st_size,
        "dropped": {group: len(keys) for group, keys in sorted(report.dropped.items())},
        "renamed_bert_prefix": report.renamed,
        "position_grid_resized": list(report.position_grid) if report.position_grid else None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(
        json.dumps(albef_model_config(config, source), indent=2) + "\n", encoding="utf-8"
    )
    return out_dir
