"""``wsris export``: Hub-ready folders whose card the Hub's own parser reads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import wsris
from tests.hub_cache import populate_hub_cache
from tests.test_api import scene
from wsris.cli import main
from wsris.errors import InvalidInputError, WeightsNotAvailableError
from wsris.export import export_model, resolve_model_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RECIPE = {"method": "sag", "data": {"train": "shapes:train", "val": "shapes:val"}}
VAL_LOG = [
    {"step": 100, "time": 5.0, "mIoU": 0.1, "Pr@0.5": 0.05},
    {"step": 200, "time": 9.0, "mIoU": 0.25, "Pr@0.5": 0.125, "mIoU_relation": 0.2},
]


def make_run(tmp_path, tiny_folder, model_dir: str = "model-step200"):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.json").write_text(json.dumps(RECIPE))
    lines = [json.dumps(r) for r in VAL_LOG]
    (run / "val_log.jsonl").write_text("\n".join(lines) + "\n{\"step\": 3")  # cut-off line
    shutil.copytree(tiny_folder, run / model_dir)
    return run


def test_run_export_has_a_card_the_hub_parses(tiny_folder, tmp_path):
    from huggingface_hub import ModelCard

    run = make_run(tmp_path, tiny_folder)
    out = export_model(run, tmp_path / "out", repo_id="someone/tiny-sag")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.safetensors"]
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "wsris"
    assert {"referring-image-segmentation", "wsris", "wsris-sag"} <= set(data.tags)
    assert data.datasets == ["shapes-ref"]
    assert data.model_name == "tiny"
    results = {r.metric_type: r for r in data.eval_results}
    assert results["mIoU"].metric_value == 0.25  # the record of the exported step
    assert results["Pr@0.5"].metric_value == 0.125
    assert results["mIoU_relation"].metric_value == 0.2
    r = results["mIoU"]
    assert (r.task_type, r.dataset_type, r.dataset_split) == (
        "image-segmentation", "shapes-ref", "val")
    assert 'wsris.load("hf-hub:someone/tiny-sag")' in card.text


def test_export_loads_from_folder_and_from_a_hub_cache(tiny_folder, tmp_path):
    run = make_run(tmp_path, tiny_folder)
    out = export_model(run, tmp_path / "out")
    want = wsris.load(tiny_folder).segment(scene(), "red")
    from_folder = wsris.load(out).segment(scene(), "red")
    np.testing.assert_array_equal(from_folder.heatmap, want.heatmap)
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "someone/tiny-sag", COMMIT, files)
    seg = wsris.load("hf-hub:someone/tiny-sag", cache_dir=cache, local_files_only=True)
    np.testing.assert_array_equal(seg.segment(scene(), "red").heatmap, want.heatmap)


def test_options_and_sources(tiny_folder, tmp_path):
    from huggingface_hub import ModelCard

    out = export_model(tiny_folder, tmp_path / "a", license_name="MIT",
                       datasets=["my/data"], tags=["extra"], weights_dtype="float16")
    data = ModelCard.load(out / "README.md").data
    assert data.license == "mit" and data.datasets == ["my/data"] and "extra" in data.tags
    assert data.eval_results is None  # a bare folder with no measured metrics
    # the final model/ of a run wins over step folders
    run = make_run(tmp_path, tiny_folder)
    shutil.copytree(tiny_folder, run / "model")
    assert resolve_model_folder(run) == (run / "model", run)
    with pytest.raises(WeightsNotAvailableError, match="neither a model folder"):
        export_model(tmp_path / "a" / "..", tmp_path / "b")
    with pytest.raises(InvalidInputError, match="model folder itself"):
        export_model(out, out)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "recipe.json").write_text("{}")
    with pytest.raises(WeightsNotAvailableError, match="--export-only"):
        export_model(empty, tmp_path / "c")


def test_bundled_model_card_keeps_its_metrics(tmp_path):
    from huggingface_hub import ModelCard

    from wsris.weights.manifest import get_spec

    spec = get_spec("sag-shapes")
    wsris.load("sag-shapes").save_pretrained(tmp_path / "s")
    data = ModelCard.load(tmp_path / "s" / "README.md").data
    assert data.license == spec.license.lower()
    got = {r.metric_type: r.metric_value for r in data.eval_results}
    assert got["mIoU"] == round(spec.metrics["mIoU"], 4)


def test_cli_export(tiny_folder, tmp_path):
    run = make_run(tmp_path, tiny_folder)
    res = CliRunner().invoke(main, ["export", str(run), str(tmp_path / "out"), "--tag", "x"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "model.safetensors").is_file()
    res = CliRunner().invoke(main, ["export", str(tmp_path / "nope"), str(tmp_path / "o2")])
    assert res.exit_code == 6 and "no such folder" in res.output
