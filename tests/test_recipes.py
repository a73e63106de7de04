"""The shipped recipes parse, build their model config and keep the papers' settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsris.methods.sag.model import SagConfig
from wsris.training.config import TrainConfig, model_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(CONFIGS.rglob("*.yaml"))  # the ablation recipes too


def test_every_recipe_named_by_the_issues_exists():
    names = {p.stem for p in RECIPES}
    for name in ("chunk_refcoco", "chunk_refcocop", "chunk_grefumd", "chunk_shapes",
                 "sag_refcoco", "sag_refcocop", "sag_grefumd", "sag_phrasecut", "sag_shapes"):
        assert name in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds_a_model_config(path):
    config = TrainConfig.from_yaml(path)
    built = model_config(config)
    assert built["method"] == config.method
    assert config.optim.total_steps > config.optim.warmup_steps


# Lee et al. 2023, Sec. 4.1 "Reproducibility"
@pytest.mark.parametrize(
    "name,lambdas", [("chunk_refcoco", (0.5, 3.0)), ("chunk_refcocop", (1.0, 3.0)),
                     ("chunk_grefumd", (1.0, 5.0))]
)
def test_chunk_paper_recipes_use_the_papers_lambdas(name, lambdas):
    config = TrainConfig.from_yaml(CONFIGS / f"{name}.yaml")
    assert (config.loss["intra"], config.loss["inter"]) == lambdas
    assert config.loss["tau"] == 0.3
    arch = model_config(config)["architecture"]
    assert arch["image_size"] == 384 and arch["vision_width"] == 768
    assert "checkpoint" in config.model["init"]


# Kim et al. 2023, Sec. 4.1: K = 36 (60 on PhraseCut), Ks 2 on RefCOCO / PhraseCut, 3 otherwise
@pytest.mark.parametrize(
    "name,kg,ks", [("sag_refcoco", 18, 2), ("sag_refcocop", 12, 3), ("sag_grefumd", 12, 3),
                   ("sag_phrasecut", 30, 2)]
)
def test_sag_paper_recipes_keep_the_papers_settings(name, kg, ks):
    config = TrainConfig.from_yaml(CONFIGS / f"{name}.yaml")
    arch = model_config(config)["architecture"]
    paper = SagConfig.paper().to_dict()
    departures = {k for k, v in arch.items() if v != paper[k]} - {"num_groups", "slots_per_group"}
    assert departures == set()
    assert (arch["num_groups"], arch["slots_per_group"]) == (kg, ks)
    assert config.optim.lr == 1e-4 and config.optim.batch_size == 32
    assert config.loss.get("recon_only_steps", 0) == 0
    assert config.model["init"]["image_encoder"].startswith("timm:vit_small_patch16_384")
    assert config.model["init"]["text_encoder"] == "hf:bert-base-uncased"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_data_specs_name_readable_datasets(path):
    from wsris.data import parse_data_spec

    config = TrainConfig.from_yaml(path)
    train = config.data["train"]
    stages = [train] if isinstance(train, str) else [s["spec"] for s in train]
    for spec in [*stages, config.data["val"]]:
        parsed = parse_data_spec(spec.partition("?")[0])  # no InvalidInputError
        assert parsed.kind in ("shapes", "refer", "phrasecut")
    if path.stem == "sag_phrasecut":
        assert parse_data_spec(config.data["val"]).kind == "phrasecut"
