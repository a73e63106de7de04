"""The models and inputs the benchmarks run on.

Two sizes per method:

* ``tiny``: the bundled ``albef-chunk-shapes`` model (chunk) and the Shapes-Ref SaG
  recipe ``configs/sag_shapes.yaml`` (128 px, MiniLM-size text encoder) with random
  weights: the models a CPU user runs on Shapes-Ref;
* ``paper``: the paper-size architectures with random weights, from the manifest entries
  ``albef-refcoco+`` (ALBEF-base: ViT-B/16 at 384 px + BERT-base, fusion from layer 6)
  and ``sag-refcoco`` (ViT-S/16 at 384 px + BERT-base, K = 36 slots, T = 6).

Speed does not depend on the weights' values, so random weights give the same timings
as trained ones of the same size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .common import count_parameters

SIZES = ("tiny", "paper")
METHODS = ("chunk", "sag")
REPO = Path(__file__).resolve().parents[1]
SAG_TINY_RECIPE = REPO / "configs" / "sag_shapes.yaml"
PAPER_SPECS = {"chunk": "albef-refcoco+", "sag": "sag-refcoco"}
# RefCOCO images are about 640x480: the paper-size models get an image of that size.
PAPER_IMAGE_SIZE = (480, 640)


@dataclass
class BenchModel:
    """A Segmenter with a description and the image and expressions it is timed on."""

    segmenter: Any  # wsris.Segmenter
    method: str
    size: str
    label: str
    image: np.ndarray  # HxWx3 uint8
    texts: list[str]  # 16 Shapes-Ref val expressions

    def describe(self) -> dict[str, Any]:
        seg = self.segmenter
        return {
            "label": self.label,
            "method": self.method,
            "size": self.size,
            "parameters": count_parameters(seg.model),
            "model_input": list(seg.config["preprocessing"]["size"]),
            "image": list(self.image.shape[:2]),
            "architecture": seg.config["architecture"],
            "inference": seg.config["inference"],
        }


def expressions(n: int = 16) -> list[str]:
    """``n`` Shapes-Ref val expressions (two per scene, scenes 0, 1, ...)."""
    from wsris.data.shapes import ShapesRef

    ds = ShapesRef("val")
    out: list[str] = []
    i = 0
    while len(out) < n:
        out.extend(e.text for e in ds[i].expressions)
        i += 1
    return out[:n]


def scene(size: str) -> np.ndarray:
    """Shapes-Ref val scene 0: 128 px for tiny models, resized to 640x480 for paper-size."""
    from wsris.data.shapes import ShapesRef

    if size == "tiny":
        return ShapesRef("val")[0].image
    import cv2

    image = ShapesRef("val", image_size=max(PAPER_IMAGE_SIZE))[0].image
    h, w = PAPER_IMAGE_SIZE
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def model_config(method: str, size: str) -> tuple[dict[str, Any], str]:
    """``config.json`` dict and a label for a method and size (not for the bundled one)."""
    if size == "paper":
        from wsris.weights.manifest import get_spec

        name = PAPER_SPECS[method]
        config = copy.deepcopy(get_spec(name).config)
        config["method"] = method
        return config, f"{name} architecture, random weights"
    if method == "sag":
        from wsris.training.config import TrainConfig
        from wsris.training.config import model_config as recipe_config

        config = recipe_config(TrainConfig.from_yaml(SAG_TINY_RECIPE))
        config.pop("name", None)
        return config, f"{SAG_TINY_RECIPE.relative_to(REPO)} architecture, random weights"
    raise ValueError(f"no config for {method} {size}: the tiny chunk model is bundled")


def build(
    method: str, size: str, device: str | torch.device = "cpu", dtype: str | None = None
) -> BenchModel:
    """The benchmark model of ``method`` (chunk | sag) and ``size`` (tiny | paper)."""
    import wsris
    from wsris.api import Segmenter
    from wsris.registry import build_model

    if method not in METHODS or size not in SIZES:
        raise ValueError(f"unknown model {method}/{size}")
    if method == "chunk" and size == "tiny":
        seg = wsris.load("albef-chunk-shapes", device=device, dtype=dtype)
        label = "albef-chunk-shapes (bundled)"
        if seg.spec is not None and seg.spec.random_init:
            label += ", random weights"
    else:
        config, label = model_config(method, size)
        torch.manual_seed(0)
        model = build_model(method, config["architecture"])
        seg = Segmenter(model, config, name=f"{method}-{size}", device=device, dtype=dtype)
    return BenchModel(seg, method, size, label, scene(size), expressions(16))
