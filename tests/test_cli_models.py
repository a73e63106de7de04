"""``wsris models``: a table that fits 100 columns; --wide and --json give everything."""

from __future__ import annotations

import json

from click.testing import CliRunner

from wsris.cli import main
from wsris.data.shapes_grammar import RELATIONS, SHAPES, ShapesConfig
from wsris.weights.manifest import default_model, load_manifest


def run(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_table_fits_100_columns_and_marks_the_default():
    out = run("models").splitlines()
    assert max(len(line) for line in out) <= 100
    assert out[0].split() == ["NAME", "METHOD", "STATUS", "SIZE", "mIoU"]
    manifest = load_manifest()
    body = out[1:len(manifest) + 1]
    default = default_model()[0]
    starred = [line.split()[0] for line in body if line.split()[1] == "*"]
    assert starred == [default]
    for line in body:
        name = line.split()[0]
        miou = manifest[name].metrics.get("mIoU")
        expected = "-" if miou is None else f"{100 * miou:.1f}"
        assert line.split()[-1] == expected, line
    # the default's reason and one line per status present
    text = "\n".join(out)
    assert "* default" in text and default_model()[1].split()[0] in text
    for status in ("bundled:", "downloadable:", "unpublished:"):
        assert sum(line.startswith(status) for line in out) == 1


def test_wide_gives_training_data_threshold_and_vocabulary():
    out = run("models", "--wide")
    assert max(len(line) for line in out.splitlines()) <= 100
    flat = " ".join(out.split())
    for name, spec in load_manifest().items():
        assert name in flat
        assert " ".join(spec.training_data.split()) in flat
    for word in (*ShapesConfig().colours, *SHAPES[:5], *RELATIONS):
        assert word in flat
    assert "the mask is the heat map at or above the threshold" in flat  # sag
    assert "mask proposal that best matches the heat map" in flat  # chunk


def test_json_has_every_field():
    rows = {r["name"]: r for r in json.loads(run("models", "--json"))}
    manifest = load_manifest()
    assert set(rows) == set(manifest)
    default = default_model()[0]
    for name, r in rows.items():
        spec = manifest[name]
        assert r["default"] == (name == default)
        assert r["training_data"] == spec.training_data
        assert r["threshold"] == spec.threshold
        miou = spec.metrics.get("mIoU")
        assert r["mIoU"] == (None if miou is None else round(100 * miou, 2))
    shapes = rows["sag-shapes"]["vocabulary"]
    assert shapes["colours"] == list(ShapesConfig().colours)
    assert shapes["shapes"] == list(SHAPES[:5])
    assert rows["albef-refcoco+"]["vocabulary"] is None
