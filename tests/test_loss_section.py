"""A recipe's ``loss:`` section is checked against its method's loss fields when the
recipe loads: keys, types and ranges, each error a ConfigError (exit 4) naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from wsris.errors import ConfigError
from wsris.methods.chunk.objective import ChunkLoss
from wsris.methods.sag.objective import SagLoss
from wsris.training.config import TrainConfig, loss_settings, read_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(CONFIGS.rglob("*.yaml"))  # the ablation recipes too
LOSS_CLASSES = {"chunk": ChunkLoss, "sag": SagLoss}


def _defaults(method: str) -> dict:
    return {f.name: f.default for f in dataclasses.fields(LOSS_CLASSES[method])}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_keeps_its_loss_values(path):
    raw = read_recipe(path)  # its extends: chain resolved
    config = TrainConfig.from_yaml(path)
    effective = dataclasses.asdict(loss_settings(config))
    expected = {**_defaults(raw["method"]), **(raw.get("loss") or {})}
    assert effective == expected
    for name, value in effective.items():  # same value and same kind (no 1 -> True)
        assert type(value) is type(expected[name]), name


def test_the_defaults_are_the_ones_the_objectives_used():
    assert _defaults("chunk") == {
        "itc": 1.0, "itm": 1.0, "intra": 0.0, "inter": 0.0, "tau": 0.3,
        "inter_reduction": "mean", "exclude_negation": True, "chunk_losses_from_step": 0,
        "hard_negatives_from_step": 0, "box": 0.0, "semi": 0.0, "semi_fraction": 0.0,
        "gradcam_layer": None, "text_negatives": False, "filter_false_negatives": False}
    assert _defaults("sag") == {
        "c3": 1.0, "recon": 1.0, "recon_only_steps": 0, "frozen_text": False,
        "filter_false_negatives": False, "false_negatives_from_step": 0,
        "false_negative_rule": "head", "subject": 0.0, "negation": 0.0}


def _recipe(method: str, loss: dict) -> dict:
    return {"method": method, "model": {"preset": "tiny"}, "loss": loss}


@pytest.mark.parametrize("method,loss,needle", [
    ("sag", {"recno": 1.0}, "unknown field(s) ['recno'] (did you mean 'recon'?)"),
    ("chunk", {"intre": 0.5}, "unknown field(s) ['intre'] (did you mean 'intra'?)"),
    ("sag", {"c3": "x"}, "field 'c3' is 'x': expected a number"),
    ("chunk", {"inter": "3e-4"}, "YAML reads 3e-4 as text"),
    ("sag", {"recon": -1.0}, "recon is a weight: must be >= 0, got -1.0"),
    ("chunk", {"itm": -0.5}, "itm is a weight: must be >= 0, got -0.5"),
    ("chunk", {"tau": 0.0}, "tau must be > 0"),
    ("chunk", {"semi_fraction": 1.5}, "semi_fraction must be in [0, 1]"),
    ("chunk", {"inter_reduction": "max"}, "inter_reduction must be one of"),
    ("chunk", {"exclude_negation": 1}, "field 'exclude_negation' is 1: expected true or false"),
    ("chunk", {"hard_negatives_from_step": 7000.5}, "expected an integer"),
    ("sag", {"recon_only_steps": -3}, "recon_only_steps must be >= 0"),
    ("sag", {"false_negative_rule": "whole"}, "false_negative_rule must be one of"),
    ("sag", {"subject": float("nan")}, "expected a finite number"),
])
def test_a_wrong_loss_value_is_a_config_error_naming_the_key(method, loss, needle):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(_recipe(method, loss), where="r.yaml")
    message = str(err.value)
    assert message.startswith("r.yaml: loss: "), message
    assert needle in message, message


def test_the_cli_exits_4_before_anything_runs(tmp_path):
    from tests.test_cli import run

    recipe = tmp_path / "r.yaml"
    out = tmp_path / "run"
    recipe.write_text(yaml.safe_dump({**_recipe("sag", {"c3": "heavy"}),
                                      "output_dir": str(out)}))
    result = run("train", recipe)
    assert result.exit_code == 4, result.output
    assert "loss: field 'c3'" in result.output
    assert not out.exists()


def test_another_method_keys_are_refused():
    """A chunk key in a sag recipe is a typo there."""
    with pytest.raises(ConfigError, match="unknown field\\(s\\) \\['intra'\\]"):
        TrainConfig.from_dict(_recipe("sag", {"intra": 0.5}))
