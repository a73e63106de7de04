"""``wsris segment --overlay-colour`` and where ``--threshold`` is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from wsris.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shapes_scene.png"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def mask_and_overlay(tmp_path, *extra):
    res = run("segment", EXAMPLE, "the large red circle", "--model", "sag-shapes",
              "--out", tmp_path / "m.png", "--overlay", tmp_path / "o.png", "--overwrite",
              *extra)
    assert res.exit_code == 0, res.output
    return (np.asarray(Image.open(tmp_path / "m.png")) == 255,
            np.asarray(Image.open(tmp_path / "o.png")).astype(float))


def test_default_overlay_is_visible_on_the_red_circle(tmp_path):
    """The bundled demo: the target is red; the old fixed red fill moved it by 16."""
    import cv2

    mask, overlay = mask_and_overlay(tmp_path)
    image = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(float)
    inside = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert inside.sum() > 1000
    change = np.linalg.norm(overlay[inside] - image[inside], axis=1).mean()
    assert change > 100, change


def test_overlay_colour_option_fixes_the_fill(tmp_path):
    import cv2

    mask, overlay = mask_and_overlay(tmp_path, "--overlay-colour", "#00ff00")
    image = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(float)
    inside = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    expected = np.round(0.4 * image[inside] + 0.6 * np.array([0, 255, 0]))
    np.testing.assert_array_equal(overlay[inside], expected)


def test_bad_overlay_colour_is_refused_before_anything_runs(tmp_path):
    res = run("segment", EXAMPLE, "red", "--out", tmp_path / "m.png",
              "--overlay-colour", "mauve")
    assert res.exit_code == 3 and "unknown colour 'mauve'" in res.output
    assert not (tmp_path / "m.png").exists()


def test_threshold_is_refused_where_it_changes_nothing(tmp_path):
    res = run("segment", EXAMPLE, "the large red circle", "--model", "albef-chunk-shapes",
              "--threshold", "0.5", "--out", tmp_path / "m.png")
    assert res.exit_code == 2
    assert "--threshold does not change the masks of albef-chunk-shapes" in res.output
    assert "mask proposal" in res.output
    assert not (tmp_path / "m.png").exists()


def test_threshold_acts_on_a_sag_model(tmp_path):
    areas = []
    for t in ("0.3", "0.7"):
        res = run("segment", EXAMPLE, "the large red circle", "--model", "sag-shapes",
                  "--threshold", t, "--out", tmp_path / f"m{t}.png", "--json")
        assert res.exit_code == 0, res.output
        areas.append(int((np.asarray(Image.open(tmp_path / f"m{t}.png")) == 255).sum()))
    assert areas[0] > areas[1] > 0
