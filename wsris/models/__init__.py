"""Model builders by method name. Modules here are plain ``nn.Module``s: no files, no
pipelines, no image handling."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ManifestError

METHODS = ("chunk", "sag")


def build_model(method: str, architecture: dict[str, Any]) -> torch.nn.Module:
    """Build a randomly initialised model of ``method`` from its architecture dict."""
    if method == "chunk":
        from .albef import AlbefConfig, AlbefModel

        return AlbefModel(AlbefConfig.from_dict(architecture))
    if method == "sag":
        from .sag import SagConfig, SagModel

        return SagModel(SagConfig.from_dict(architecture))
    raise ManifestError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
