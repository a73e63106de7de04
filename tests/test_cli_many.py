"""``wsris segment FOLDER_OR_GLOB``: many images, one model load, outputs named after
the inputs, the same output safety as one image, and the per-image error policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wsris.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def photos(tmp_path, image):
    """A folder of three images (two PNG, one JPEG) and a file that is not an image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(image, folder / "a.png")
    shutil.copy(image, folder / "b.png")
    Image.open(image).convert("RGB").save(folder / "c.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def count_loads(monkeypatch):
    import wsris.api

    calls = []
    real = wsris.api.load

    def load(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(wsris.api, "load", load)
    return calls


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_folder_loads_the_model_once_and_names_outputs_after_inputs(
        tiny_folder, photos, tmp_path, count_loads):
    out = tmp_path / "masks"
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", out,
              "--save-overlay", "--json", "--no-progress")
    assert res.exit_code == 0, res.output
    assert len(count_loads) == 1
    assert listing(out) == ["a.overlay.png", "a.png", "b.overlay.png", "b.png",
                            "c.overlay.png", "c.png"]
    report = json.loads(res.stdout)
    assert [Path(e["image"]).name for e in report["images"]] == ["a.png", "b.png", "c.jpg"]
    assert report["skipped"] == []
    mask = np.asarray(Image.open(out / "a.png"))
    assert mask.shape == (45, 60) and report["images"][0]["results"][0]["area"] == int(
        (mask == 255).sum())


def test_glob_with_several_texts_numbers_each_images_masks(tiny_folder, photos, tmp_path):
    out = tmp_path / "masks"
    res = run("segment", str(photos / "*.png"), "red", "blue", "--model", tiny_folder,
              "--out-dir", out, "--no-progress")
    assert res.exit_code == 0, res.output
    assert listing(out) == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    assert "a.png: 'red': mask" in res.output


@pytest.mark.parametrize("target", ["empty", "pattern"])
def test_no_images_is_a_typed_error(tiny_folder, tmp_path, target):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    source = tmp_path / "empty" if target == "empty" else tmp_path / "nothing*.png"
    res = run("segment", source, "red", "--model", tiny_folder, "--out-dir", tmp_path / "o")
    assert res.exit_code == 3, res.output
    assert res.output.startswith("wsris: error: no ")
    assert not (tmp_path / "o").exists()


def test_many_images_need_out_dir_and_out_dir_refuses_out(tiny_folder, photos, tmp_path):
    res = run("segment", photos, "red", "--model", tiny_folder)
    assert res.exit_code == 2 and "--out-dir" in res.output
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", tmp_path / "o",
              "--out", tmp_path / "m.png")
    assert res.exit_code == 2 and "--out-dir names the outputs" in res.output


def test_existing_output_is_refused_before_the_model_loads(tiny_folder, photos, tmp_path,
                                                           count_loads):
    out = tmp_path / "masks"
    out.mkdir()
    (out / "b.png").write_bytes(b"keep me")
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", out)
    assert res.exit_code == 11 and "exists; pass --overwrite" in res.output
    assert count_loads == [] and listing(out) == ["b.png"]
    assert (out / "b.png").read_bytes() == b"keep me"
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", out,
              "--overwrite", "--no-progress")
    assert res.exit_code == 0, res.output
    assert (out / "b.png").read_bytes() != b"keep me"


def test_out_dir_onto_the_inputs_is_refused(tiny_folder, photos):
    before = (photos / "a.png").read_bytes()
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", photos,
              "--overwrite")
    assert res.exit_code == 11 and "input image" in res.output
    assert (photos / "a.png").read_bytes() == before


def test_two_inputs_with_one_name_clash(tiny_folder, photos, tmp_path):
    Image.open(photos / "a.png").convert("RGB").save(photos / "a.jpg")
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", tmp_path / "o")
    assert res.exit_code == 11 and "is also the mask" in res.output
    assert not (tmp_path / "o").exists()


def test_unreadable_image_fails_the_run_or_is_skipped(tiny_folder, photos, tmp_path):
    (photos / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "masks"
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", out)
    assert res.exit_code == 3 and "broken.png" in res.output and "--on-error skip" in res.output
    assert not out.exists()  # nothing written, not even the images before it
    res = run("segment", photos, "red", "--model", tiny_folder, "--out-dir", out,
              "--on-error", "skip", "--json", "--no-progress")
    assert res.exit_code == 0, res.output
    assert listing(out) == ["a.png", "b.png", "c.png"]
    report = json.loads(res.stdout)
    assert [Path(r["image"]).name for r in report["skipped"]] == ["broken.png"]
    assert "wsris: warning: skipped" in res.stderr


def test_every_image_unreadable_is_an_error_even_when_skipping(tiny_folder, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"nope")
    res = run("segment", folder, "red", "--model", tiny_folder, "--out-dir", tmp_path / "o",
              "--on-error", "skip")
    assert res.exit_code == 3 and "none of the 1 images" in res.output
    assert not (tmp_path / "o").exists()


def test_one_image_with_out_dir(tiny_folder, image, tmp_path):
    res = run("segment", image, "red", "--model", tiny_folder, "--out-dir", tmp_path / "o",
              "--save-heatmap", "--format", "bmp")
    assert res.exit_code == 0, res.output
    assert listing(tmp_path / "o") == ["scene.bmp", "scene.heatmap.png"]
