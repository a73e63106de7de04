"""Training recipes: ``configs/*.yaml`` -> :class:`TrainConfig`.

A recipe has five sections; every field has a default except ``method`` and ``model``.
``extends: other.yaml`` (relative to the recipe) starts from another recipe: mappings
merge key by key and anything else the recipe sets replaces the other's value.

```yaml
method: sag                  # a registered method (wsris.registry)
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

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ManifestError
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

    def validate(self, where: str = "recipe") -> TrainConfig:
        """Check every value by range, and the model section whole (its keys, its preset,
        the architecture by the method's strict config, preprocessing, text and inference
        as a model's config.json is checked), before anything runs; a
        :class:`~wsris.errors.ConfigError` naming the field. Returns ``self``."""
        _check_optim(self.optim, f"{where}: optim")
        _check_schedule(self.schedule, f"{where}: schedule")
        if not self.output_dir.strip():
            raise ConfigError(f"{where}: output_dir is empty")
        _check_model_section(self, where)
        loss_settings(self, where)
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "recipe") -> TrainConfig:
        from ..registry import is_method, method_names

        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
        if not unknown and not is_method(raw.get("method")):
            raise ConfigError(f"{where}: 'method' must be one of {', '.join(method_names())}")
        if not unknown and not isinstance(raw.get("model"), dict):
            raise ConfigError(f"{where}: 'model' must be a mapping")
        values = dict(raw)
        arch = raw.get("model", {}).get("architecture") if not unknown else None
        if isinstance(arch, dict):  # earlier field names still read (wsris.backbones.fields)
            from ..registry import get_method

            try:
                arch = get_method(raw["method"]).current_names(arch)
            except ConfigError as exc:
                raise ConfigError(f"{where}: model: {exc}") from exc
            values["model"] = {**raw["model"], "architecture": arch}
        values["optim"] = from_mapping(OptimConfig, raw.get("optim", {}), f"{where}: optim")
        values["optim"].betas = tuple(values["optim"].betas)
        values["schedule"] = from_mapping(ScheduleConfig, raw.get("schedule", {}),
                                          f"{where}: schedule")
        return from_mapping(cls, values, where).validate(where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a recipe; ``extends: OTHER.yaml`` (relative to the recipe's folder) starts
        from that recipe and overrides what this one sets (see :func:`read_recipe`)."""
        path = Path(path)
        return cls.from_dict(read_recipe(path), where=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it: mappings merge key by key, everything else
    (lists included) is replaced whole."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_recipe(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe at ``path`` as one mapping, its ``extends:`` chain resolved."""
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    parent = raw.pop("extends")
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{path}: extends must be the path of another recipe")
    parent_path = (path.parent / parent).resolve()
    if parent_path in _seen or parent_path == path.resolve():
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve(), parent_path))
        raise ConfigError(f"{path}: recipes extend each other in a loop: {chain}")
    base = read_recipe(parent_path, (*_seen, path.resolve()))
    if not isinstance(base, dict):
        raise ConfigError(f"{parent_path} (extended by {path}): expected a mapping")
    return merged(base, raw)


#: The keys of a recipe's ``model`` section.
MODEL_SECTION_KEYS = ("preset", "architecture", "preprocessing", "text", "inference", "init",
                      "name")


def _fail(where: str, name: str, why: str) -> ConfigError:
    return ConfigError(f"{where}: {name} {why}")


def _check_optim(o: OptimConfig, where: str) -> None:
    if not (o.lr > 0 and math.isfinite(o.lr)):
        raise _fail(where, "lr", f"must be a finite number > 0, got {o.lr}")
    if not (o.weight_decay >= 0 and math.isfinite(o.weight_decay)):
        raise _fail(where, "weight_decay", f"must be >= 0, got {o.weight_decay}")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise _fail(where, "betas", f"must be two numbers in [0, 1), got {list(o.betas)}")
    if o.total_steps < 1:
        raise _fail(where, "total_steps", f"must be at least 1, got {o.total_steps}")
    if o.warmup_steps < 0:
        raise _fail(where, "warmup_steps", f"must be >= 0, got {o.warmup_steps}")
    if o.batch_size < 1:
        raise _fail(where, "batch_size", f"must be at least 1, got {o.batch_size}")
    if not o.grad_clip >= 0:
        raise _fail(where, "grad_clip", f"must be > 0 (or 0: no clipping), got {o.grad_clip}")
    if o.num_workers < 0:
        raise _fail(where, "num_workers", f"must be >= 0, got {o.num_workers}")
    if o.texts_per_image < 1:
        raise _fail(where, "texts_per_image", f"must be at least 1, got {o.texts_per_image}")
    for prefix, mult in o.lr_mult.items():
        if not mult >= 0:
            raise _fail(where, f"lr_mult[{prefix!r}]", f"must be >= 0, got {mult}")


def _check_schedule(s: ScheduleConfig, where: str) -> None:
    for name in ("log_every", "checkpoint_every"):
        if getattr(s, name) < 1:
            raise _fail(where, name, f"must be at least 1, got {getattr(s, name)}")
    for name in ("keep_every", "eval_every", "eval_limit"):
        if getattr(s, name) < 0:
            raise _fail(where, name, f"must be >= 0 (0: off), got {getattr(s, name)}")
    if not s.time_limit_minutes >= 0:
        raise _fail(where, "time_limit_minutes",
                    f"must be >= 0 (0: none), got {s.time_limit_minutes}")


def loss_settings(config: TrainConfig, where: str = "recipe") -> Any:
    """The recipe's ``loss:`` section as its method's loss dataclass (the objective's
    ``loss_config``: defaults filled in, every key, type and range checked), or None for a
    method whose objective declares none. Errors are :class:`ConfigError` naming the key."""
    from ..registry import get_method, load_object

    spec = get_method(config.method)
    if spec.objective is None:
        return None
    loss_class = getattr(load_object(spec.objective), "loss_config", None)
    if loss_class is None:
        return None
    return from_mapping(loss_class, config.loss, f"{where}: loss",
                        getattr(loss_class, "check", None))


def _check_model_section(config: TrainConfig, where: str) -> None:
    from ..registry import get_method
    from ..weights.manifest import validate_config

    unknown = sorted(set(config.model) - set(MODEL_SECTION_KEYS))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], MODEL_SECTION_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: model: unknown field(s) {unknown}{hint}; known: "
                          f"{list(MODEL_SECTION_KEYS)}")
    for key in ("architecture", "preprocessing", "text", "inference", "init"):
        if not isinstance(config.model.get(key, {}), dict):
            raise ConfigError(f"{where}: model.{key} must be a mapping")
    try:
        full = model_config(config)
        get_method(config.method).config(full["architecture"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: model: {exc}") from exc
    except (ManifestError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: model: {exc}") from exc
    validate_config(full, f"{where}: model", where="model.")


def _preset(method: str, name: str) -> dict[str, Any]:
    from ..registry import get_method

    return get_method(method).preset(name)


def model_config(config: TrainConfig) -> dict[str, Any]:
    """The ``config.json`` of the model a recipe trains."""
    m = config.model
    arch = _preset(config.method, m.get("preset", "tiny"))
    unknown = sorted(set(m.get("architecture", {})) - set(arch))
    if unknown:
        raise ConfigError(f"recipe: unknown {config.method} architecture field(s) {unknown}")
    arch.update(m.get("architecture", {}))
    from ..registry import get_method

    defaults = copy.deepcopy(get_method(config.method).defaults)
    out: dict[str, Any] = {"method": config.method, "architecture": arch}
    for part in ("preprocessing", "text", "inference"):
        out[part] = {**defaults[part], **m.get(part, {})}
    out["preprocessing"].setdefault("size", [arch["image_size"], arch["image_size"]])
    if "name" in m:
        out["name"] = m["name"]
    return out
