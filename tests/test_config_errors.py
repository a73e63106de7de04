"""One strict config loader, one error: a typo in any config gives the same clean error."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsris.errors import ConfigError
from wsris.registry import method_names
from wsris.weights.manifest import load_manifest


def _bundled_folder(method: str) -> Path:
    for spec in load_manifest().values():
        for source in spec.sources:
            if spec.method == method and source.kind == "bundled":
                return Path(str(resources.files("wsris") / source.path))
    pytest.skip(f"no bundled {method} model")


@pytest.mark.parametrize("method", method_names())
def test_a_typo_in_any_methods_config_json_is_the_same_clean_error(method, tmp_path, image):
    import wsris
    from wsris.cli import main

    folder = tmp_path / f"{method}-model"
    shutil.copytree(_bundled_folder(method), folder)
    config = json.loads((folder / "config.json").read_text())
    config["architecture"]["hiden_size"] = 8  # the typo
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(ConfigError, match=r"config\.json: .*unknown field\(s\) \['hiden_size'\]"):
        wsris.load(str(folder), device="cpu")
    res = CliRunner().invoke(main, ["segment", str(image), "a red circle", "--model",
                                    str(folder), "--out", str(tmp_path / "m.png")])
    assert res.exit_code == ConfigError.exit_code == 4
    assert res.output.startswith("wsris: error: ") and res.output.count("\n") == 1
    assert "unknown field(s) ['hiden_size']" in res.output


def test_a_recipe_typo_is_the_same_error(tmp_path):
    from wsris.training import TrainConfig

    recipe = {"method": method_names()[0], "model": {}, "optim": {"lrr": 0.1}}
    typo = r"optim: unknown field\(s\) \['lrr'\] \(did you mean 'lr'\?\)"
    with pytest.raises(ConfigError, match=typo):
        TrainConfig.from_dict(recipe)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['shedule'\]"):
        TrainConfig.from_dict({**recipe, "optim": {}, "shedule": {}})
