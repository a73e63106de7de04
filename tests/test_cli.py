"""The command line: outputs, JSON, one-line errors and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wsris.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_segment_writes_mask_overlay_heatmap_and_json(tiny_folder, image, tmp_path):
    out = tmp_path / "o" / "mask.png"
    res = run("segment", image, "the red square", "the blue one", "--model", tiny_folder,
              "--out", out, "--overlay", tmp_path / "ov.png", "--heatmap", tmp_path / "h.png",
              "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert [r["text"] for r in report["results"]] == ["the red square", "the blue one"]
    for i, r in enumerate(report["results"]):
        mask = np.asarray(Image.open(r["mask_path"]))
        assert r["mask_path"].endswith(f"mask_{i}.png")
        assert mask.shape == (45, 60) and r["area"] == int((mask == 255).sum())
        assert Image.open(r["overlay_path"]).size == (60, 45)
        assert Image.open(r["heatmap_path"]).mode == "RGB"


def test_single_text_keeps_the_given_file_name(tiny_folder, image, tmp_path):
    res = run("segment", image, "red", "--model", tiny_folder, "--out", tmp_path / "m.png",
              "--threshold", "0.2")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.png").is_file() and "'red': mask" in res.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["segment", "{image}", "red", "--model", "no-such-model"], 5, "unknown model"),
        (["segment", "{missing}", "red", "--model", "{model}"], 3, "not found"),
        (["segment", "{image}", "", "--model", "{model}"], 3, "empty"),
        (["segment", "{image}", "red", "--model", "sag-refcoco"], 5, "no weights"),
        (["download", "sag-refcoco"], 5, "train"),
        (["segment", "{image}", "red", "--model", "{model}", "--threshold", "3"], 2, "range"),
    ],
)
def test_errors_are_one_line_with_their_exit_code(tiny_folder, image, tmp_path, args, code, needle):
    filled = [a.format(image=image, model=tiny_folder, missing=tmp_path / "nope.png") for a in args]
    res = run(*filled)
    assert res.exit_code == code, res.output
    assert needle in res.output
    if code != 2:  # click's own usage errors print a usage block
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("wsris: error: ")


def test_models_lists_every_manifest_entry_with_status():
    res = run("models", "--json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["sag-refcoco"]["status"] == "unpublished"
    assert rows["albef-refcoco+"]["status"] in ("downloadable", "cached")
    assert rows["albef-chunk-shapes"]["status"].startswith("bundled")
    table = run("models").output.splitlines()
    assert table[0].split()[:3] == ["NAME", "METHOD", "STATUS"]
    assert sorted(line.split()[0] for line in table[1:len(rows) + 1]) == sorted(rows)
    assert rows["sag-shapes"]["status"] == "bundled (default)"
    assert rows["albef-chunk-shapes"]["status"] == "bundled"
