"""Training recipes: ``configs/*.yaml`` -> :class:`TrainConfig`.

A recipe has five sections; every field has a default except ``method`` and ``model``:

```yaml
method: sag                  # a registered method (wsris.methods)
output_dir: runs/sag_shapes  # checkpoints, logs, the exported model
seed: 0
model:                       # the saved config.json of the trained model
  preset: tiny               # a preset of the method's config class, then overrides:
  architecture: {dim: 128}
  preprocessing: {size: [128, 128], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
  text: {style: bert, max_length: 32}
  inference: {threshold: 0.5}
  init: {text_encoder: minilm} # optional: pretrained weights to start from
data:
  train: shapes:train?variant=attributes   # a data spec, as for `wsris eval --data`
  val: shapes:val
optim: {lr: 3.0e-4, weight_decay: 0.05, warmup_steps: 500, total_steps: 20000,
        batch_size: 32, grad_clip: 1.0, lr_mult: {image_encoder: 0.1}}
loss: {...}                  # method-specific weights, see the method's objective
schedule: {log_every: 20, checkpoint_every: 500, eval_every: 2000, eval_limit: 300}
amp: true                    # CUDA autocast (bf16 where supported, else fp16)
cpu_amp: false               # bf16 autocast on the CPU as well (8% off a chunk step here)
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..strict import from_mapping


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 500
    total_steps: int = 10_000
    batch_size: int = 32
    grad_clip: float = 1.0
    num_workers: int = 0  # reserved: batches are read in the training process (a warning)
    # expressions of one image per batch (1: texts drawn independently); with 2, a batch
    # of 32 texts encodes 16 images, halving the image encoder's share of a step
    texts_per_image: int = 1
    # learning-rate multipliers by parameter-name prefix, e.g. {"image_encoder": 0.1}
    lr_mult: dict[str, float] = field(default_factory=dict)


@dataclass
class ScheduleConfig:
    log_every: int = 20
    checkpoint_every: int = 500
    keep_every: int = 0  # 0: only last.pt; else also keep checkpoints/step{N}.pt every N steps
    eval_every: int = 0  # 0: only at the end
    eval_limit: int = 300  # val samples per validation; 0: no validation at all
    time_limit_minutes: float = 0.0  # 0: none; else stop cleanly (with a checkpoint) after


@dataclass
class TrainConfig:
    method: str
    model: dict[str, Any]
    output_dir: str = "runs/train"
    seed: int = 0
    data: dict[str, Any] = field(default_factory=lambda: {"train": "shapes:train"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    amp: bool = True
    cpu_amp: bool = False
    device: str = "auto"
    notes: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "recipe") -> TrainConfig:
        from ..methods import is_method, method_names

        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
        if not unknown and not is_method(raw.get("method")):
            raise ConfigError(f"{where}: 'method' must be one of {', '.join(method_names())}")
        if not unknown and not isinstance(raw.get("model"), dict):
            raise ConfigError(f"{where}: 'model' must be a mapping")
        values = dict(raw)
        values["optim"] = from_mapping(OptimConfig, raw.get("optim", {}), f"{where}: optim")
        values["optim"].betas = tuple(values["optim"].betas)
        values["schedule"] = from_mapping(ScheduleConfig, raw.get("schedule", {}),
                                          f"{where}: schedule")
        return from_mapping(cls, values, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(raw, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
