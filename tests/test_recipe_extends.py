"""Recipes as deltas: ``extends:`` merges, and every recipe still means what it meant.

``recipe_fingerprints.json`` holds the sha256 of each recipe's effective configuration
(``TrainConfig.to_dict()``, keys sorted), computed from the recipes as they were written
out whole, before any of them was rewritten to extend another. It was computed once more
when the backbone fields got one spelling (``vit_width`` -> ``vision_width``, ...): the 32
recipes that name those fields changed their hash, and each recipe as it was before the
renaming, read with its earlier names, resolved to the same configuration as after it (39
of 39). :func:`test_a_recipe_in_the_earlier_spelling_means_the_same` keeps that true.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from wsris.errors import ConfigError
from wsris.training.config import TrainConfig, merged

ROOT = Path(__file__).resolve().parents[1]
FINGERPRINTS = json.loads((ROOT / "tests" / "recipe_fingerprints.json").read_text())
RECIPES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))


def fingerprint(config: TrainConfig) -> str:
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("recipe", sorted(FINGERPRINTS))
def test_every_recipe_resolves_to_its_effective_configuration_of_before(recipe):
    assert fingerprint(TrainConfig.from_yaml(ROOT / recipe)) == FINGERPRINTS[recipe]


def test_every_recipe_is_fingerprinted():
    assert set(RECIPES) == set(FINGERPRINTS)


def test_the_shipped_and_paper_recipes_are_deltas():
    for recipe in ("configs/ablations/sag_subject_negation.yaml", "configs/sag_shapes_pieces.yaml",
                   "configs/chunk_shapes_stage2_gpu.yaml", "configs/sag_refcocop.yaml",
                   "configs/chunk_grefumd.yaml"):
        assert "\nextends: " in "\n" + (ROOT / recipe).read_text(), recipe


# today's name -> the name an earlier recipe gave the same field (written out here, apart
# from wsris.backbones.fields, so that the test checks the package's table)
EARLIER = {
    "sag": {"vision_width": "vit_width", "vision_layers": "vit_depth",
            "vision_heads": "vit_heads", "vision_mlp_ratio": "vit_mlp_ratio",
            "text_layers": "text_depth"},
    "chunk": {"vision_layers": "vision_depth", "text_max_positions": "max_positions"},
}


@pytest.mark.parametrize("recipe", ["configs/sag_shapes.yaml", "configs/chunk_shapes.yaml",
                                    "configs/ablations/sag_vit_scratch.yaml"])
def test_a_recipe_in_the_earlier_spelling_means_the_same(recipe, tmp_path):
    import yaml

    raw = yaml.safe_load((ROOT / recipe).read_text())
    arch = raw["model"]["architecture"]
    old = {EARLIER[raw["method"]].get(k, k): v for k, v in arch.items() if k != "stem"}
    if arch.get("stem") == "conv":
        old["conv_stem"] = True  # the earlier stem switch
    elif "stem" in arch:
        old["stem"] = arch["stem"]
    assert set(old) != set(arch)  # the recipe does use fields that were renamed
    raw["model"]["architecture"] = old
    if "extends" in raw:
        raw["extends"] = str((ROOT / recipe).parent / raw["extends"])
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(raw))
    assert (TrainConfig.from_yaml(tmp_path / "old.yaml").to_dict()
            == TrainConfig.from_yaml(ROOT / recipe).to_dict())


def test_a_field_under_both_spellings_is_refused(tmp_path):
    raw = {"method": "sag", "output_dir": "runs/x",
           "model": {"architecture": {"vit_width": 64, "vision_width": 64}}}
    with pytest.raises(ConfigError, match="'vit_width' is the earlier name of 'vision_width'"):
        TrainConfig.from_dict(raw)


def test_merge_overrides_mappings_key_by_key_and_replaces_the_rest():
    base = {"a": 1, "m": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2, 3]}
    over = {"m": {"y": {"q": 5}, "z": 0}, "l": [9], "b": 2}
    assert merged(base, over) == {"a": 1, "b": 2, "m": {"x": 1, "y": {"p": 1, "q": 5}, "z": 0},
                                  "l": [9]}
    assert base["m"]["y"]["q"] == 2  # the base is not changed


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_extends_reads_relative_to_the_recipe_and_overrides(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path, "base.yaml", "method: sag\nmodel: {preset: tiny, text: {max_length: 24}}\n"
                                  "optim: {lr: 3.0e-4, total_steps: 100}\n")
    child = _write(tmp_path / "sub", "child.yaml",
                   "extends: ../base.yaml\noptim: {total_steps: 7}\nseed: 3\n")
    config = TrainConfig.from_yaml(child)
    assert config.optim.total_steps == 7 and config.optim.lr == 3.0e-4 and config.seed == 3
    assert config.model["text"] == {"max_length": 24} and config.method == "sag"


def test_extends_errors_are_config_errors(tmp_path):
    a = _write(tmp_path, "a.yaml", "extends: b.yaml\nmethod: sag\nmodel: {}\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        TrainConfig.from_yaml(a)
    missing = _write(tmp_path, "m.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="recipe not found"):
        TrainConfig.from_yaml(missing)
    bad = _write(tmp_path, "n.yaml", "extends: 3\n")
    with pytest.raises(ConfigError, match="extends must be"):
        TrainConfig.from_yaml(bad)
    self_ref = _write(tmp_path, "s.yaml", "extends: s.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        TrainConfig.from_yaml(self_ref)
