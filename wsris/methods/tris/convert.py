"""Convert TRIS's released checkpoints (``stage1_*.pth``, ``stage2_*.pth``) to wsris folders.

The release files are what TRIS's ``save_checkpoint`` writes: a dict whose ``model``
holds the network's state dict (``optimizer``, ``lr_scheduler`` and ``epoch`` beside it
are ignored); a plain state dict is accepted too, and a ``module.`` prefix on every key
(a DistributedDataParallel save) is removed. The stage is read from the keys
(``vis_project.*``: stage 1; ``attention2.*``: stage 2) and the architecture from the
shapes, as CLIP's ``build_model`` does (heads = width / 64).

Dropped by name, and only these (counted in ``config.json`` under ``source.dropped``):

- ``attention_pool``: ``backbone.visual.attnpool.*``, CLIP's attention pool, whose output
  neither stage reads;
- ``clip_logit_scale``: ``backbone.logit_scale``, CLIP's own temperature (stage 1 has
  its own ``logit_scale``);
- ``deep_supervision``: ``final_seg2.*``..``final_seg4.*``, stage 2's training-only heads.

Everything else must fill the model exactly (:func:`wsris.weights.state_dicts.check_state_dict`
names every difference). Files are read with ``torch.load(weights_only=True)``.
No checksum is published upstream; the sha256 of the file converted is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import WeightsMismatchError
from ...weights.checksums import sha256_file
from ...weights.state_dicts import check_state_dict, conversion_paths, fitted_tensors
from ...weights.torch_files import read_torch_checkpoint
from .model import TrisConfig, TrisModel
from .preprocessing import model_config

DROPPED: dict[str, tuple[str, ...]] = {
    "attention_pool": ("backbone.visual.attnpool.",),
    "clip_logit_scale": ("backbone.logit_scale",),
    "deep_supervision": ("final_seg2.", "final_seg3.", "final_seg4."),
}
DDP_PREFIX = "module."


def dropped_group(key: str) -> str | None:
    for group, prefixes in DROPPED.items():
        if any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes):
            return group
    return None


# TRIS's training script pickles its learning-rate scheduler object when it has no
# state_dict: such a file names a class, which weights_only refuses
_SCHEDULER_HINT = (
    "TRIS's training script falls back to pickling its learning-rate scheduler object when "
    "it has no state_dict; if that is what the file holds, extract the weights where you "
    "trust the file: torch.save(torch.load(FILE, weights_only=False)['model'], "
    "'plain.pth'), then convert plain.pth"
)


def state_of(checkpoint: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The state dict inside ``checkpoint`` and its layout (``wrapped`` or ``plain``)."""
    layout = "plain"
    state: Any = checkpoint
    if isinstance(checkpoint.get("model"), Mapping):
        state, layout = checkpoint["model"], "wrapped"
    state = dict(state)
    if state and all(k.startswith(DDP_PREFIX) for k in state):
        state = {k[len(DDP_PREFIX):]: v for k, v in state.items()}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsMismatchError(
                f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor: "
                "not a TRIS state dict")
    return state, layout


def detect_stage(state: Mapping[str, Any]) -> int:
    if "vis_project.weight" in state:
        return 1
    if "attention2.Wq.weight" in state:
        return 2
    head = sorted({k.split(".")[0] for k in state})[:8]
    raise WeightsMismatchError(
        "not a TRIS checkpoint: no vis_project.* (stage 1) and no attention2.* (stage 2) "
        f"keys; top-level names found: {head}")


def _shape(state: Mapping[str, Any], key: str, dim: int) -> int:
    if key not in state:
        raise WeightsMismatchError(f"TRIS checkpoint lacks {key!r}")
    return int(state[key].shape[dim])


def infer_config(state: Mapping[str, Any], image_size: int = 320,
                 text_length: int = 20) -> TrisConfig:
    """The architecture the checkpoint's shapes describe."""
    stage = detect_stage(state)
    blocks = [len({k.split(".")[3] for k in state
                   if k.startswith(f"backbone.visual.layer{i}.")}) for i in range(1, 5)]
    width = _shape(state, "backbone.ln_final.weight", 0)
    layers = len({k.split(".")[3] for k in state
                  if k.startswith("backbone.transformer.resblocks.")})
    extra: dict[str, Any] = {}
    if stage == 1:
        extra["hidden_dim"] = _shape(state, "vis_project.weight", 0)
        extra["bilateral"] = any(k.startswith("attn_fusion.") for k in state)
    return TrisConfig(
        stage=stage,
        vision_layers=tuple(blocks),  # type: ignore[arg-type]
        vision_width=_shape(state, "backbone.visual.layer1.0.conv1.weight", 0),
        embed_dim=_shape(state, "backbone.text_projection", 1),
        vocab_size=_shape(state, "backbone.token_embedding.weight", 0),
        context_length=_shape(state, "backbone.positional_embedding", 0),
        text_length=text_length,
        text_width=width,
        text_heads=max(1, width // 64),
        text_layers=layers,
        image_size=image_size,
        **extra,
    )


def map_tris_state_dict(
    checkpoint: Mapping[str, Any], image_size: int = 320
) -> tuple[dict[str, torch.Tensor], TrisConfig, dict[str, list[str]], str]:
    """Checkpoint -> (wsris state dict, config, dropped keys by group, layout); strict."""
    state, layout = state_of(checkpoint)
    config = infer_config(state, image_size=image_size)
    dropped: dict[str, list[str]] = {}
    kept: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        group = dropped_group(key)
        if group is not None:
            dropped.setdefault(group, []).append(key)
        else:
            kept[key] = value.float() if value.is_floating_point() else value
    with torch.device("meta"):
        expected = TrisModel(config).state_dict()
    check_state_dict(f"TRIS stage-{config.stage} checkpoint", expected, kept)
    return kept, config, dropped, layout


def convert_tris(src: Path | str, out_dir: Path | str, image_size: int = 320,
                 overwrite: bool = False) -> Path:
    """Convert a TRIS ``.pth`` into ``out_dir`` (``config.json``, ``model.safetensors``)."""
    from safetensors.torch import save_file

    src, out_dir = conversion_paths(src, out_dir, overwrite)
    checkpoint = read_torch_checkpoint(src, refusal_hint=_SCHEDULER_HINT)
    state, config, dropped, layout = map_tris_state_dict(checkpoint, image_size)
    tensors = fitted_tensors(TrisModel, config, state)
    source = {
        "format": "tris",
        "stage": config.stage,
        "file": src.name,
        "sha256": sha256_file(src),
        "sha256_published": None,  # TRIS publishes no checksums
        "size": src.stat().st_size,
        "layout": layout,
        "ignored_entries": sorted(k for k in checkpoint if k != "model") if layout == "wrapped"
        else [],
        "dropped": {group: len(keys) for group, keys in sorted(dropped.items())},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    folder_config = model_config(config, source)
    (out_dir / "config.json").write_text(
        json.dumps(folder_config, indent=2) + "\n", encoding="utf-8")
    from ...model_card import render_model_card

    (out_dir / "README.md").write_text(render_model_card(folder_config), encoding="utf-8")
    return out_dir
