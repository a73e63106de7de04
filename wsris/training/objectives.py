"""The base class of the training objectives the methods register.

The method-specific half of training (model, data, losses, validation, export) is an
objective; each method names its own in its ``MethodSpec.objective``.

An objective is an ``nn.Module`` whose ``forward(batch)`` returns a dict of loss terms
with the weighted total under ``"loss"``; wrapping it (not the bare model) in DDP keeps
gradient synchronisation correct while the losses call several model methods.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import build_model, get_method, load_object
from ..text import Tokenizer
from ..weights.folder import save_model_folder
from .config import TrainConfig, model_config
from .data import PairCollator, referring_dataset


class Objective(nn.Module):
    """Shared plumbing; subclasses implement ``forward`` (and may add ``validate``).

    The method is the recipe's (``config.method``); the registry picks the subclass.
    """

    method = ""  # informative only
    #: whether ``forward`` reads ``batch.stem_features`` (stored frozen-stem features)
    reads_stem_features = False

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.train_config = config
        self.device = device
        self.model_config = model_config(config)
        self.model = build_model(config.method, self.model_config["architecture"])
        from .warm_start import initialise

        initialise(self.model, config.model.get("init", {}))
        self.model.to(device)
        self.tokenizer = Tokenizer.from_config(self.model_config["text"])
        self.collator = PairCollator(self.tokenizer, self.model_config["preprocessing"])
        self.step = 0
        self._train_stages: list[tuple[int | None, Any]] | None = None
        self._stem_features: dict[int, Any] = {}

    def train_stages(self) -> list[tuple[int | None, Any]]:
        """``data.train`` as ``(until_step, dataset)`` pairs, the last open-ended.

        ``train`` is one data spec, or a curriculum: a list of ``{spec, until}`` stages,
        e.g. attribute phrases only until step 3000, then the full data. Opened once per
        objective: the training loop and :meth:`describable` read the same datasets.
        """
        if self._train_stages is None:
            self._train_stages = self._open_train_stages()
        return self._train_stages

    def _open_train_stages(self) -> list[tuple[int | None, Any]]:
        raw = self.train_config.data.get("train")
        if isinstance(raw, str):
            return [(None, referring_dataset(raw))]
        if not isinstance(raw, list) or not raw:
            raise ConfigError("recipe: data.train must be a spec or a list of stages")
        stages: list[tuple[int | None, Any]] = []
        for i, stage in enumerate(raw):
            last = i == len(raw) - 1
            if not isinstance(stage, dict) or "spec" not in stage or set(stage) - {"spec", "until"}:
                raise ConfigError(f"recipe: data.train[{i}] must be {{spec, until}}")
            until = stage.get("until")
            if (until is None) != last or (until is not None and stages and stages[-1][0] >= until):
                raise ConfigError(
                    "recipe: every curriculum stage but the last needs an increasing 'until'"
                )
            stages.append((until, referring_dataset(stage["spec"])))
        return stages

    def describable(self, batch, rule: str = "head") -> torch.Tensor:
        """``[B_txt, B_img]``: which texts of a training batch may describe which of its
        images under ``rule``, from the scenes of the current curriculum stage (Shapes-Ref
        only; see :mod:`wsris.training.false_negatives`)."""
        from .false_negatives import batch_describable

        return batch_describable(self.train_stages(), self.step, batch, rule)

    def train_dataset(self):
        """The dataset of the last (or only) training stage."""
        return self.train_stages()[-1][1]

    def val_dataset(self):
        spec = self.train_config.data.get("val")
        return None if spec is None else referring_dataset(spec)

    def collate(self, samples: list, dataset: Any = None):
        """One training batch of ``samples``; given the ``dataset`` they come from, the
        frozen stem's stored features ride along when it has them (see
        :mod:`wsris.training.stem_cache`)."""
        batch = self.collator(samples)
        features = self.stored_stem_features(dataset)
        if features is not None:
            batch.stem_features = features[batch.image_ids]
        return batch.to(self.device)

    def frozen_stem(self) -> nn.Module | None:
        """The model's frozen EfficientNet backbone, or None when its stem trains."""
        from ..backbones.stems import EfficientNetStemPatchEmbed

        encoder = getattr(self.model, "visual_encoder", None) or getattr(
            self.model, "image_encoder", None)
        stem = getattr(encoder, "patch_embed", None)
        if isinstance(stem, EfficientNetStemPatchEmbed) and stem.frozen:
            return stem.backbone
        return None

    def stored_stem_features(self, dataset: Any):
        """The stored frozen-stem features of ``dataset`` (written on first use), or None
        when this objective does not read them, the stem trains, or the dataset is not a
        Shapes-Ref cache."""
        if dataset is None or not self.reads_stem_features:
            return None
        key = id(dataset)
        if key not in self._stem_features:
            from .stem_cache import stem_features_for

            stem = self.frozen_stem()
            self._stem_features[key] = None if stem is None else stem_features_for(
                dataset, stem, self.collator.preprocessing)
        return self._stem_features[key]

    def set_step(self, step: int) -> None:
        self.step = step

    def validate(self, limit: int) -> dict[str, float]:
        return {}

    def export(self, folder: Path, total_seconds: float, step: int | None = None,
               recipe: dict | None = None) -> Path:
        """Save the model with a card; ``recipe`` (default: this objective's) is the
        recipe the weights were trained with, as the run recorded it."""
        config = self.model_config
        steps = "" if step is None else f" over {step} steps"
        recipe = self.train_config.to_dict() if recipe is None else recipe
        config["card"] = {
            "data": recipe.get("data", {}).get("train", ""),
            "recipe": "```json\n" + json.dumps(recipe, indent=2, default=str)
            + f"\n```\n\nTraining wall time: {total_seconds / 3600:.2f} h{steps}.",
        }
        config.setdefault("name", f"{self.train_config.method}-trained")
        self.model.eval()
        return save_model_folder(self.model, config, folder)


def build_objective(config: TrainConfig, device: torch.device) -> Objective:
    """The objective the recipe's method registers."""
    spec = get_method(config.method)
    if spec.objective is None:
        raise ConfigError(f"recipe: method {spec.name!r} has no training objective")
    return load_object(spec.objective)(config, device)
