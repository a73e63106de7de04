"""Configs and recipes are validated whole, by type and range, before anything runs; a
model folder's weights are checked for non-finite values and against a recorded sha256."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsris
from tests.test_cli import run
from wsris.errors import ChecksumMismatchError, ConfigError, WeightsMismatchError
from wsris.methods.chunk.model import AlbefConfig
from wsris.methods.sag.config import SagConfig
from wsris.training.config import OptimConfig, ScheduleConfig, TrainConfig

RECIPE = {"method": "sag", "output_dir": "unused", "model": {"preset": "tiny"},
          "data": {"train": "shapes:train?length=4"}}


def recipe_with(**sections) -> dict:
    raw = copy.deepcopy(RECIPE)
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:
            raw[section] = values
    return raw


# Recipes


@pytest.mark.parametrize(("sections", "needle"), [
    ({"model": {"architecure": {"dim": 64}}}, "did you mean 'architecture'"),
    ({"model": {"preprocesing": {}}}, "did you mean 'preprocessing'"),
    ({"model": {"architecture": {"dim": "big"}}}, "'dim'"),
    ({"model": {"text": {"max_length": 0}}}, "text.max_length"),
    ({"model": {"preprocessing": {"mean": [0.5, float("nan"), 0.5]}}}, "finite"),
    ({"optim": {"total_steps": -5}}, "total_steps must be at least 1"),
    ({"optim": {"total_steps": 0}}, "total_steps must be at least 1"),
    ({"optim": {"lr": 0}}, "lr must be a finite number > 0"),
    ({"optim": {"lr": -1e-3}}, "lr must be a finite number > 0"),
    ({"optim": {"lr": float("nan")}}, "finite"),
    ({"optim": {"lr": "3e-4"}}, "write 3.0e-4"),
    ({"optim": {"lr": "fast"}}, "expected a number"),
    ({"optim": {"grad_clip": -1}}, "grad_clip must be > 0 (or 0: no clipping)"),
    ({"optim": {"batch_size": 0}}, "batch_size must be at least 1"),
    ({"optim": {"batch_size": 2.5}}, "expected an integer"),
    ({"schedule": {"log_every": 0}}, "log_every must be at least 1"),
    ({"schedule": {"checkpoint_every": 0}}, "checkpoint_every must be at least 1"),
    ({"schedule": {"time_limit_minutes": -1}}, "time_limit_minutes"),
    ({"seed": "zero"}, "'seed'"),
    ({"amp": "yes"}, "'amp'"),
])
def test_bad_recipes_are_config_errors(sections, needle):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(recipe_with(**sections))
    assert needle in str(err.value)


def test_a_bad_recipe_is_exit_4_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_with(output_dir=str(out),
                                               optim={"grad_clip": -1})))
    res = run("train", path)
    assert res.exit_code == 4 and res.output.startswith("wsris: error: ")
    assert not out.exists()
    path.write_text(yaml.safe_dump(recipe_with(output_dir=str(out))))
    for args in (["--steps", "0"], ["--steps", "-5"], ["--time-limit", "-1"],
                 ["--lr", "0"]):
        res = run("train", path, *args)
        assert res.exit_code == 2, (args, res.output)  # a usage error, before anything
    assert not out.exists()


def test_the_shipped_recipes_pass():
    for path in sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")):
        TrainConfig.from_yaml(path)


def test_grad_clip_zero_means_no_clipping(monkeypatch, tmp_path):
    """0 switches clipping off: the loop clips at infinity (the norm is still logged),
    never at 0, which would zero every gradient."""
    from wsris.training import train

    seen = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        seen.append(max_norm)
        return real(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    config = TrainConfig.from_dict(recipe_with(
        output_dir=str(tmp_path / "run"),
        model={"preset": "tiny", "architecture": {"image_size": 32, "iterations": 1}},
        data={"train": "shapes:train?length=2&image_size=32"},
        optim={"grad_clip": 0, "total_steps": 1, "batch_size": 2, "warmup_steps": 0},
        schedule={"eval_limit": 0}))
    train(config, resume=False, progress=False)
    assert seen == [math.inf]


# Model configs


@pytest.fixture()
def model_copy(tiny_folder, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    return folder


def _edit(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(("change", "needle"), [
    (lambda c: c["text"].update(max_length=0), "text.max_length"),
    (lambda c: c["text"].update(max_length=-5), "text.max_length"),
    (lambda c: c["text"].update(max_length=10_000), "over the text encoder's limit"),
    (lambda c: c["text"].update(max_words=-1), "text.max_words"),
    (lambda c: c["text"].update(vocabulary="klingon"), "unknown vocabulary"),
    (lambda c: c["preprocessing"].update(mean=[0.5, "nan", 0.5]), "3 finite numbers"),
    (lambda c: c["preprocessing"].update(interpolation="lanczos9"), "interpolation"),
    (lambda c: c["preprocessing"].update(size=[64, 64]), "does not match the model"),
    (lambda c: c["architecture"].update(dim=32.0), "expected an integer"),
    (lambda c: c["architecture"].update(dropout="0.1"), "expected a number"),
    (lambda c: c["architecture"].update(stem_frozen=1), "expected true or false"),
    (lambda c: c["architecture"].update(conv_stem=1), "expected true or false"),
    (lambda c: c["inference"].update(threshold=True), "threshold"),
])
def test_bad_model_configs_are_exit_4(model_copy, image, tmp_path, change, needle):
    _edit(model_copy, change)
    with pytest.raises(ConfigError) as err:
        wsris.load(model_copy)
    assert needle in str(err.value)
    res = run("segment", image, "red", "--model", model_copy, "-o", tmp_path / "o.png")
    assert res.exit_code == 4 and res.output.startswith("wsris: error: ")
    assert not (tmp_path / "o.png").exists()


def test_nan_in_a_weight_is_refused(model_copy):
    from safetensors.torch import load_file, save_file

    state = load_file(model_copy / "model.safetensors")
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, model_copy / "model.safetensors")
    _edit(model_copy, lambda c: c.pop("weights_sha256", None))  # no digest to catch it
    with pytest.raises(WeightsMismatchError, match=f"non-finite values .* in {name}"):
        wsris.load(model_copy)


def test_a_flipped_byte_is_caught_by_the_recorded_digest(model_copy, image, tmp_path):
    config = json.loads((model_copy / "config.json").read_text())
    assert len(config["weights_sha256"]) == 64  # save_pretrained records it
    data = bytearray((model_copy / "model.safetensors").read_bytes())
    data[-3] ^= 0x01  # a bit in the last weight: still loads, a different model
    (model_copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="records"):
        wsris.load(model_copy)
    res = run("segment", image, "red", "--model", model_copy, "-o", tmp_path / "o.png")
    assert res.exit_code == 7


# A property test over every config field


WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))


def _wrong_for(field: dataclasses.Field, value) -> bool:
    """Whether ``value`` is surely wrong for a field whose default is ``field.default``."""
    default = field.default if field.default is not dataclasses.MISSING else \
        field.default_factory()  # type: ignore[misc]
    if isinstance(default, bool):
        return not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, bool) or not isinstance(value, int)
    if isinstance(default, float):
        return (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value))
    if isinstance(default, str):
        return not isinstance(value, str)
    if isinstance(default, tuple):
        return not isinstance(value, list)  # a list may be a valid tuple
    if isinstance(default, dict):
        return not isinstance(value, dict)
    return False


ARCHITECTURES = {"sag": (SagConfig, SagConfig.tiny().to_dict()),
                 "albef": (AlbefConfig, AlbefConfig.tiny().to_dict())}
RANGES = {("optim", "lr"): [0, -1e-3], ("optim", "total_steps"): [0, -5],
          ("optim", "batch_size"): [0, -1], ("optim", "grad_clip"): [-1, -0.5],
          ("optim", "warmup_steps"): [-1], ("optim", "weight_decay"): [-0.1],
          ("optim", "texts_per_image"): [0], ("schedule", "log_every"): [0, -3],
          ("schedule", "checkpoint_every"): [0], ("schedule", "keep_every"): [-1],
          ("schedule", "eval_every"): [-2], ("schedule", "eval_limit"): [-1],
          ("schedule", "time_limit_minutes"): [-1.0]}


@st.composite
def broken_config(draw):
    """(what to build, the broken mapping): a wrong type in any field of an architecture
    or a recipe section, or an out-of-range value in a recipe field."""
    target = draw(st.sampled_from(["sag", "albef", "optim", "schedule", "range"]))
    if target == "range":
        (section, name) = draw(st.sampled_from(sorted(RANGES)))
        return "recipe", recipe_with(**{section: {name: draw(st.sampled_from(
            RANGES[(section, name)]))}})
    cls = {"optim": OptimConfig, "schedule": ScheduleConfig}.get(target) or \
        ARCHITECTURES[target][0]
    field = draw(st.sampled_from(dataclasses.fields(cls)))
    value = draw(WRONG_VALUES.filter(lambda v: _wrong_for(field, v)))
    if target in ARCHITECTURES:
        arch = dict(ARCHITECTURES[target][1])
        arch[field.name] = value
        return target, arch
    return "recipe", recipe_with(**{target: {field.name: value}})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=broken_config())
def test_any_wrong_value_in_any_config_field_is_a_config_error(case):
    kind, raw = case
    with pytest.raises(ConfigError):
        if kind == "recipe":
            TrainConfig.from_dict(raw)
        else:
            ARCHITECTURES[kind][0].from_dict(raw)


def test_the_property_test_sees_every_field():
    """Every simple field of each config has values the strategy calls wrong."""
    for cls in (SagConfig, AlbefConfig, OptimConfig, ScheduleConfig):
        for field in dataclasses.fields(cls):
            assert any(_wrong_for(field, v) for v in (None, "x", [1], {"a": 1}, 1.5)), \
                (cls.__name__, field.name)
