"""One spelling of the ViT and BERT fields in the chunk and SaG configs; files in the
earlier spelling still load, to the same model."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import wsris
from wsris.backbones.fields import CHUNK_EARLIER_NAMES, SAG_EARLIER_NAMES, current_names
from wsris.errors import ConfigError
from wsris.methods.chunk.model import AlbefConfig
from wsris.methods.sag.config import SagConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "shapes_scene.png"
SHARED = {"image_size", "patch_size", "stem", "stem_frozen", "conv_stem_channels",
          "vision_width", "vision_layers", "vision_heads", "vision_mlp_ratio",
          "vision_drop_path", "vision_layer_norm_eps", "text_width", "text_layers",
          "text_heads", "text_intermediate", "text_vocab_size", "text_max_positions",
          "text_type_vocab_size", "text_layer_norm_eps", "text_dropout"}


def test_both_configs_spell_the_shared_backbone_fields_alike():
    for cls in (AlbefConfig, SagConfig):
        assert SHARED <= {f.name for f in fields(cls)}, cls.__name__


def test_no_shipped_file_uses_an_earlier_name():
    manifest = json.loads((ROOT / "weights_manifest.json").read_text())
    earlier = set(CHUNK_EARLIER_NAMES) | set(SAG_EARLIER_NAMES) | {"conv_stem"}
    for name, entry in manifest["models"].items():
        if entry["method"] in ("chunk", "sag"):
            assert not earlier & set(entry["config"]["architecture"]), name
    for folder in (ROOT / "wsris" / "weights" / "bundled").iterdir():
        arch = json.loads((folder / "config.json").read_text())["architecture"]
        assert not earlier & set(arch), folder.name


def test_current_names_renames_and_keeps_values_and_order():
    got = current_names({"image_size": 64, "vit_width": 32, "text_depth": 2, "dim": 8},
                        SAG_EARLIER_NAMES, "here")
    assert list(got.items()) == [("image_size", 64), ("vision_width", 32),
                                 ("text_layers", 2), ("dim", 8)]
    assert current_names({"conv_stem": True}, CHUNK_EARLIER_NAMES, "x") == {"stem": "conv"}
    assert current_names({"conv_stem": False, "stem": "patch"}, {}, "x") == {"stem": "patch"}
    with pytest.raises(ConfigError, match="contradicts stem 'efficientnet_lite0'"):
        current_names({"conv_stem": True, "stem": "efficientnet_lite0"}, {}, "x")
    with pytest.raises(ConfigError, match="'max_positions' is the earlier name"):
        current_names({"max_positions": 8, "text_max_positions": 8}, CHUNK_EARLIER_NAMES, "x")


def test_earlier_names_of_one_method_are_unknown_fields_of_the_other():
    # the chunk config's earlier "vocab_size" is not a SaG name: a typo stays a typo
    with pytest.raises(ConfigError, match="unknown field"):
        SagConfig.from_dict({"vocab_size": 30522})
    with pytest.raises(ConfigError, match="unknown field"):
        AlbefConfig.from_dict({"vit_width": 64})


_SAG_BACK = {new: old for old, new in SAG_EARLIER_NAMES.items()}
_CHUNK_BACK = {new: old for old, new in CHUNK_EARLIER_NAMES.items()}


@pytest.mark.parametrize(("name", "back"), [("sag-shapes", _SAG_BACK),
                                            ("albef-chunk-shapes", _CHUNK_BACK)])
def test_a_model_folder_in_the_earlier_spelling_gives_the_same_mask(tmp_path, name, back):
    folder = tmp_path / name
    shutil.copytree(ROOT / "wsris" / "weights" / "bundled" / name, folder)
    config = json.loads((folder / "config.json").read_text())
    arch = {back.get(k, k): v for k, v in config["architecture"].items()}
    if arch.get("stem") == "conv":
        del arch["stem"]
        arch["conv_stem"] = True
    assert set(arch) != set(config["architecture"])
    config["architecture"] = arch
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    text = "the large red circle"
    old = wsris.load(folder).segment(EXAMPLE, text)
    new = wsris.load(name).segment(EXAMPLE, text)
    assert old.mask.any() and np.array_equal(old.mask, new.mask)


def test_the_earlier_position_limit_still_bounds_max_length(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(ROOT / "wsris" / "weights" / "bundled" / "albef-chunk-shapes", folder)
    config = json.loads((folder / "config.json").read_text())
    arch = config["architecture"]
    arch["max_positions"] = arch.pop("text_max_positions")
    config["text"]["max_length"] = arch["max_positions"] + 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="over the text encoder's limit of 32 positions"):
        wsris.load(folder)
