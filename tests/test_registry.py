from __future__ import annotations

import copy
import json

import pytest

from wsris.errors import ManifestError, UnknownModelError
from wsris.weights.manifest import get_spec, list_models, load_manifest, parse_manifest

CONFIG = {
    "architecture": {"width": 8},
    "preprocessing": {"size": [32, 32], "mean": [0.5] * 3, "std": [0.5] * 3},
    "text": {"style": "bert", "max_length": 16},
    "inference": {"threshold": 0.5},
}
SHA = "a" * 64


def manifest(**overrides):
    entry = {
        "method": "sag",
        "config": copy.deepcopy(CONFIG),
        "license": "Apache-2.0",
        "paper": "Kim et al. 2023",
        "sources": [
            {
                "kind": "hf",
                "repo_id": "org/model",
                "revision": "0" * 40,
                "files": {"config.json": {"sha256": SHA}, "model.safetensors": {"sha256": SHA}},
            }
        ],
    }
    entry.update(overrides)
    return {"schema_version": 1, "models": {"m": entry}}


def test_valid_manifest_parses():
    spec = parse_manifest(manifest())["m"]
    assert spec.method == "sag" and spec.threshold == 0.5
    assert spec.sources[0].revision == "0" * 40
    assert [f.name for f in spec.sources[0].files] == ["config.json", "model.safetensors"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"method": "clip"}, "method"),
        ({"license": 3}, "license"),
        ({"config": {**CONFIG, "inference": {"threshold": 2.0}}}, "config.inference.threshold"),
        ({"config": {**CONFIG, "preprocessing": {"size": [32], "mean": [0] * 3,
                                                 "std": [1] * 3}}}, "config.preprocessing.size"),
        ({"sources": [{"kind": "hf", "repo_id": "org/model", "revision": "main",
                       "files": {}}]}, "sources[0].revision"),
        ({"sources": [{"kind": "ftp"}]}, "sources[0].kind"),
        ({"sources": [{"kind": "url", "url": "http://x", "sha256": "zz", "converter": "albef"}]},
         "sources[0].sha256"),
        ({"sources": []}, "note"),
    ],
)
def test_malformed_entries_name_the_entry_and_field(change, field):
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest(**change))
    assert "'m'" in str(err.value) and repr(field) in str(err.value)


def test_unpublished_entry_with_note_is_valid():
    spec = parse_manifest(manifest(sources=[], note="train it with configs/x.yaml"))["m"]
    assert not spec.published


def test_unknown_name_lists_names_and_closest_match():
    specs = parse_manifest(manifest())
    with pytest.raises(UnknownModelError) as err:
        get_spec("n", specs)
    assert "Known models: m" in str(err.value)
    specs = load_manifest()
    with pytest.raises(UnknownModelError, match="Did you mean 'sag-refcoco'"):
        get_spec("sag-refcoc", specs)


def test_bundled_manifest_is_valid_and_on_disk_copy_matches(tmp_path):
    from pathlib import Path

    from wsris.weights.manifest import _default_manifest_text

    names = list_models()
    assert "sag-refcoco" in names and "albef-refcoco+" in names
    # the copy at the repository root (the one people read and edit) is the packaged one
    root_copy = Path(__file__).resolve().parents[1] / "weights_manifest.json"
    assert json.loads(root_copy.read_text(encoding="utf-8")) == json.loads(
        _default_manifest_text())
    assert set(load_manifest(root_copy)) == set(names)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest()))
    assert list(load_manifest(path)) == ["m"]
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not JSON"):
        load_manifest(path)


def test_converted_albef_entry_tokenizes_to_the_text_encoders_limit():
    # Grounding.py's Grad-CAM pass tokenizes with no max_length: the encoder's own limit
    from wsris.methods.chunk.model import AlbefConfig
    from wsris.weights.manifest import get_spec

    spec = get_spec("albef-refcoco+")
    positions = spec.config["architecture"].get("text_max_positions",
                                                 AlbefConfig().text_max_positions)
    assert spec.config["text"]["max_length"] == positions == 512


def test_the_package_reads_the_top_level_manifest_and_nothing_else():
    # one source of truth: weights_manifest.json at the repository root; the package's
    # copy is a link to it (a wheel holds the file itself, built from the same link)
    from importlib import resources
    from pathlib import Path

    from wsris.weights.manifest import _default_manifest_text, parse_manifest

    root = Path(__file__).resolve().parents[1] / "weights_manifest.json"
    packaged = Path(str(resources.files("wsris") / "weights_manifest.json"))
    assert packaged.read_bytes() == root.read_bytes() == _default_manifest_text().encode()
    if packaged.is_symlink():
        assert packaged.resolve() == root.resolve()
    assert load_manifest() == parse_manifest(json.loads(root.read_text(encoding="utf-8")))


def test_one_shot_segment_uses_the_default_model(monkeypatch):
    """``wsris.segment`` without a model loads what ``wsris segment`` would."""
    import wsris
    import wsris.api
    from wsris.weights.manifest import default_model

    loaded = []

    class Fake:
        def segment(self, image, text, **kwargs):
            return (image, text, kwargs)

    def fake_load(name, *args, **kwargs):
        loaded.append(name)
        return Fake()

    monkeypatch.setattr(wsris.api, "load", fake_load)
    assert wsris.segment("img", "the red circle", threshold=0.3) == (
        "img", "the red circle", {"threshold": 0.3})
    wsris.segment("img", "x", model="albef-chunk-shapes")
    assert loaded == [default_model()[0], "albef-chunk-shapes"]
