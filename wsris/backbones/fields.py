"""One spelling of the image- and text-encoder fields in every method's architecture.

The chunk and the SaG configs describe the same ViT and BERT with the same names:

- image encoder: ``image_size``, ``patch_size``, ``stem`` (with ``stem_frozen`` and
  ``conv_stem_channels``), ``vision_width``, ``vision_layers``, ``vision_heads``,
  ``vision_mlp_ratio``, ``vision_drop_path``, ``vision_layer_norm_eps``;
- text encoder: ``text_width``, ``text_layers``, ``text_heads``, ``text_intermediate``,
  ``text_vocab_size``, ``text_max_positions``, ``text_type_vocab_size``,
  ``text_layer_norm_eps``, ``text_dropout``.

:func:`wsris.backbones.vit.vision_transformer` and
:func:`wsris.backbones.bert.bert_config` build the encoders from any config with these
fields.

Model folders and recipes written before the two configs shared these names exist on disk
(the chunk config said ``vision_depth``, ``vocab_size``, ``max_positions``; the SaG config
``vit_width``, ``vit_depth``, ``text_depth``, ``text_ln_eps``, ...; both a boolean
``conv_stem``). :func:`current_names` reads them; nothing writes them any more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

#: Earlier spellings of the chunk (ALBEF) architecture fields.
CHUNK_EARLIER_NAMES: Mapping[str, str] = {
    "vision_depth": "vision_layers",
    "vocab_size": "text_vocab_size",
    "max_positions": "text_max_positions",
    "type_vocab_size": "text_type_vocab_size",
}

#: Earlier spellings of the SaG architecture fields.
SAG_EARLIER_NAMES: Mapping[str, str] = {
    "vit_width": "vision_width",
    "vit_depth": "vision_layers",
    "vit_heads": "vision_heads",
    "vit_mlp_ratio": "vision_mlp_ratio",
    "vit_drop_path": "vision_drop_path",
    "vit_ln_eps": "vision_layer_norm_eps",
    "vit_pretrained": "vision_pretrained",
    "text_depth": "text_layers",
    "text_ln_eps": "text_layer_norm_eps",
}


def current_names(architecture: Mapping[str, Any], earlier: Mapping[str, str],
                  where: str) -> Any:
    """``architecture`` with every earlier field name replaced by today's.

    ``conv_stem: true`` (the earlier stem switch) becomes ``stem: conv``, ``conv_stem:
    false`` is dropped. A field given under both spellings, or ``conv_stem: true`` beside
    another stem, is a :class:`~wsris.errors.ConfigError`.
    """
    if not isinstance(architecture, Mapping):  # the strict loader names what it is instead
        return architecture
    out: dict[str, Any] = {}
    for key, value in architecture.items():
        if key == "conv_stem":
            continue
        new = earlier.get(key, key)
        if new != key and new in architecture:
            raise ConfigError(f"{where}: {key!r} is the earlier name of {new!r}; give one")
        out[new] = value
    if "conv_stem" in architecture:
        switch = architecture["conv_stem"]
        if not isinstance(switch, bool):
            raise ConfigError(f"{where}: conv_stem: expected true or false, got {switch!r}")
        if switch:
            if out.get("stem", "patch") not in ("patch", "conv"):
                raise ConfigError(f"{where}: conv_stem: true contradicts stem {out['stem']!r}")
            out["stem"] = "conv"
    return out
