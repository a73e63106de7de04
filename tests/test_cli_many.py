"""``wsris segment`` over a folder or a glob: one start-up, one output per image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import wsris
from tests.test_api import scene
from wsris.cli import main
from wsris.cli.segment import expand_images


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    base = scene()
    Image.fromarray(base).save(d / "a.png")
    Image.fromarray(base[::-1].copy()).save(d / "b.jpg", quality=95)
    Image.fromarray(base[:, ::-1].copy()).save(d / "b.png")  # stem collides with b.jpg
    (d / "notes.txt").write_text("not an image")
    return d


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_expand_images(folder, tmp_path):
    assert [p.name for p in expand_images(folder)] == ["a.png", "b.jpg", "b.png"]
    assert [p.name for p in expand_images(folder / "*.png")] == ["a.png", "b.png"]
    assert expand_images(folder / "a.png") is None
    from wsris.errors import ImageError

    with pytest.raises(ImageError, match="no images"):
        expand_images(tmp_path / "none-*.png")


def test_folder_loads_once_and_matches_single_calls(folder, tiny_folder, tmp_path, monkeypatch):
    loads = []
    original = wsris.api.load

    def counted(*a, **kw):
        loads.append(a)
        return original(*a, **kw)

    monkeypatch.setattr(wsris.api, "load", counted)
    out = tmp_path / "masks"
    res = run("segment", folder, "the red square", "--model", tiny_folder, "--out", out,
              "--overlay", tmp_path / "ov", "--json")
    assert res.exit_code == 0, res.output
    assert len(loads) == 1
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert [line["image"] for line in lines] == [str(folder / n) for n in
                                                  ("a.png", "b.jpg", "b.png")]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg.png", "b.png.png"]
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == sorted(
        p.name for p in out.iterdir())
    seg = original(tiny_folder)
    for line in lines:
        want = seg.segment(line["image"], "the red square").mask
        got = np.asarray(Image.open(line["results"][0]["mask_path"])) == 255
        np.testing.assert_array_equal(got, want)


def test_a_bad_image_is_reported_and_the_rest_still_written(folder, tiny_folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "m"
    res = run("segment", folder, "red", "blue", "--model", tiny_folder, "--out", out)
    assert res.exit_code == 3
    assert "broken.png" in res.output
    assert sorted(p.name for p in out.iterdir()) == [
        "a_0.png", "a_1.png", "b.jpg_0.png", "b.jpg_1.png", "b.png_0.png", "b.png_1.png"]
