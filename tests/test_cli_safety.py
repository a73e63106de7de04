"""``wsris segment`` outputs are all-or-nothing, never destroy input, and every input is
checked before the model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.test_cli import run
from wsris.cli import main


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fails the test if a model is loaded: the error must come first."""
    import wsris.api

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was refused")

    monkeypatch.setattr(wsris.api, "load", refuse)


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        ("mnoext", "PNG"),
        ("m.jpg", "PNG"),
        ("{dir}", "is a folder"),
        ("{image}", "input image"),
        ("{file}/m.png", "is a file, not a folder"),
    ],
)
def test_bad_mask_paths_fail_before_the_model_loads(
    tiny_folder, image, tmp_path, no_model_load, out, needle
):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    before = image.read_bytes()
    target = out.format(dir=tmp_path / "adir", image=image, file=tmp_path / "afile")
    if "/" not in target:
        target = str(tmp_path / target)
    snapshot = listing(tmp_path)
    res = run("segment", image, "red", "--model", tiny_folder, "-o", target)
    assert res.exit_code == 11, res.output
    assert res.output.startswith("wsris: error: ") and needle in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert image.read_bytes() == before
    assert listing(tmp_path) == snapshot


def test_unwritable_place_is_an_output_error(tiny_folder, image, tmp_path, no_model_load):
    res = run("segment", image, "red", "--model", tiny_folder, "-o", "/proc/m.png")
    assert res.exit_code == 11, res.output
    assert "cannot write" in res.output and "Traceback" not in res.output


def test_overlay_over_the_input_image_is_refused(tiny_folder, image, tmp_path, no_model_load):
    before = image.read_bytes()
    res = run("segment", image, "red", "--model", tiny_folder, "-o", tmp_path / "m.png",
              "--overlay", image)
    assert res.exit_code == 11 and "input image" in res.output
    assert image.read_bytes() == before and not (tmp_path / "m.png").exists()


def test_explicit_format_allows_another_suffix(tiny_folder, image, tmp_path):
    res = run("segment", image, "red", "--model", tiny_folder, "-o", tmp_path / "m.jpg",
              "--format", "png")
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "m.jpg") as im:
        assert im.format == "PNG" and set(np.unique(np.asarray(im))) <= {0, 255}


def test_existing_output_needs_overwrite(tiny_folder, image, tmp_path):
    out = tmp_path / "m.png"
    out.write_bytes(b"old")
    res = run("segment", image, "red", "--model", tiny_folder, "-o", out)
    assert res.exit_code == 11 and "--overwrite" in res.output
    assert out.read_bytes() == b"old"
    res = run("segment", image, "red", "--model", tiny_folder, "-o", out, "--overwrite")
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.size == (60, 45)


def test_failure_midway_leaves_no_partial_set(tiny_folder, image, tmp_path, monkeypatch):
    """Two texts, the second overlay fails to save: nothing at all is written."""
    from wsris.result import SegmentationResult

    calls = {"n": 0}
    original = SegmentationResult.overlay

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SegmentationResult, "overlay", flaky)
    out = tmp_path / "o"
    snapshot = listing(tmp_path)
    res = run("segment", image, "red", "blue", "--model", tiny_folder, "-o", out / "m.png",
              "--overlay", out / "ov.png")
    assert res.exit_code != 0 and calls["n"] == 2
    assert listing(tmp_path) == snapshot  # no m_0.png, no temporary files, no new folder


def test_ctrl_c_exits_130_and_leaves_nothing(tiny_folder, image, tmp_path, monkeypatch):
    from wsris.api import Segmenter

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Segmenter, "segment", interrupted)
    snapshot = listing(tmp_path)
    res = run("segment", image, "red", "--model", tiny_folder, "-o", tmp_path / "x" / "m.png")
    assert res.exit_code == 130 and "interrupted" in res.output
    assert listing(tmp_path) == snapshot


def test_stale_numbered_masks_of_an_earlier_run(tiny_folder, image, tmp_path):
    out = tmp_path / "mask.png"
    res = run("segment", image, "a", "b", "c", "--model", tiny_folder, "-o", out)
    assert res.exit_code == 0, res.output
    assert {p.name for p in tmp_path.glob("mask_*.png")} == {"mask_0.png", "mask_1.png",
                                                              "mask_2.png"}
    (tmp_path / "mask_0.png").unlink()
    (tmp_path / "mask_1.png").unlink()
    # mask_2.png alone would look like part of a new two-text run
    res = run("segment", image, "a", "b", "--model", tiny_folder, "-o", out)
    assert res.exit_code == 11 and "mask_2.png" in res.output
    assert not (tmp_path / "mask_0.png").exists()
    res = run("segment", image, "a", "b", "--model", tiny_folder, "-o", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert {p.name for p in tmp_path.glob("mask_*.png")} == {"mask_0.png", "mask_1.png"}


def test_output_files_are_world_readable_like_any_new_file(tiny_folder, image, tmp_path):
    res = run("segment", image, "red", "--model", tiny_folder, "-o", tmp_path / "m.png")
    assert res.exit_code == 0, res.output
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["{missing}", "red"], 3, "not found"),
        (["{image}", ""], 3, "empty"),
        (["{image}", "red", "--model", "no-such-model"], 5, "unknown model"),
        (["{image}", "red", "--model", "sag-refcoco"], 5, "no weights"),
    ],
)
def test_inputs_are_checked_before_the_model_loads(
    tiny_folder, image, tmp_path, no_model_load, args, code, needle
):
    filled = [a.format(image=image, missing=tmp_path / "nope.png") for a in args]
    if "--model" not in filled:
        filled += ["--model", str(tiny_folder)]
    res = run("segment", *filled, "-o", tmp_path / "m.png")
    assert res.exit_code == code, res.output
    assert needle in res.output and not (tmp_path / "m.png").exists()


def test_text_problems_are_found_before_the_model_loads(tiny_folder, image, tmp_path,
                                                        no_model_load):
    res = run("segment", image, "fine", "x" * 3000, "--model", tiny_folder,
              "-o", tmp_path / "m.png")
    assert res.exit_code == 3 and "longer than" in res.output
    assert len(res.output) < 300  # the 3,000 characters are not echoed back


def test_long_texts_are_shortened_when_echoed(tiny_folder, image, tmp_path):
    text = "the red square " * 60  # 900 characters: a valid (if odd) text
    res = CliRunner().invoke(main, ["segment", str(image), text, "--model", str(tiny_folder),
                                    "-o", str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output
    assert "(900 characters)" in res.stdout and len(res.stdout) < 250
    assert "truncated" in res.stderr  # one warning line, not a Python warning
    assert all(ln.startswith("wsris: warning: ") for ln in res.stderr.splitlines())
    res = CliRunner().invoke(main, ["segment", str(image), text, "--model", str(tiny_folder),
                                    "-o", str(tmp_path / "m2.png"), "--json"])
    assert json.loads(res.stdout)["results"][0]["text"] == text  # JSON keeps it whole


def test_missing_image_fails_fast_as_a_process(tmp_path):
    """The real command, in a fresh interpreter: the model is never loaded (checked by
    what the process imported, not by a clock)."""
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['wsris', 'segment', sys.argv[1], 'red']\n"
        "try:\n"
        "    runpy.run_module('wsris.cli', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print('torch' in sys.modules, e.code, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "missing.png")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("wsris: error: image file not found"), proc.stderr
    assert lines[-1] == "False 3"  # exit code 3, and torch was never imported
    print(f"missing image refused in {elapsed:.2f} s")  # reported, not asserted
