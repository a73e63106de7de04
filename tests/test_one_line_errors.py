"""Inputs that used to end in a traceback end as one line with their documented code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import wsris
from tests.test_api import scene
from tests.test_cli import run
from wsris.errors import TextError
from wsris.images import load_image

REPO = Path(__file__).resolve().parents[1]


def one_line(res, code: int) -> None:
    assert res.exit_code == code, res.output
    assert res.output.strip().splitlines()[-1].startswith("wsris: error: ")
    assert "Traceback" not in res.output


def test_invalid_utf8_in_a_cli_text_is_exit_3(tiny_folder, image, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "wsris.cli", "segment", str(image), b"red \xff\xfe circle",
         "--model", str(tiny_folder), "-o", str(tmp_path / "m.png")],
        capture_output=True, text=True, env=env)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("wsris: error: ") and "not valid Unicode" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.png").exists()


def test_lone_surrogates_in_the_api_are_text_errors(tiny_folder):
    seg = wsris.load(tiny_folder)
    with pytest.raises(TextError, match="not valid Unicode"):
        seg.segment(scene(), "the \ud800 square")


def test_a_full_disk_while_writing_masks_is_exit_11(tiny_folder, image, tmp_path,
                                                    monkeypatch):
    from PIL import Image

    real = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)):  # files fail; in-memory probes work
            raise OSError(28, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full)
    out = tmp_path / "out"
    out.mkdir()
    res = run("segment", image, "a", "b", "--model", tiny_folder, "-o", out / "m.png")
    one_line(res, 11)
    assert "No space left on device" in res.output
    assert list(out.iterdir()) == []


def test_an_overlay_format_that_cannot_be_written_is_refused_first(tiny_folder, image,
                                                                   tmp_path, monkeypatch):
    import wsris.api

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was refused")

    monkeypatch.setattr(wsris.api, "load", refuse)
    res = run("segment", image, "red", "--model", tiny_folder, "-o", tmp_path / "m.png",
              "--overlay", tmp_path / "x.h5")
    one_line(res, 11)
    assert "cannot be written" in res.output


def test_half_precision_tensors_are_images_like_any_float():
    values = torch.rand(3, 4, 5)
    for dtype in (torch.bfloat16, torch.float16):
        half = values.to(dtype)
        expected = load_image(half.float())
        np.testing.assert_array_equal(load_image(half), expected)


def test_export_shapes_into_an_impossible_folder_is_exit_11():
    res = run("data", "export-shapes", "/proc/no/such/dir", "--n", "1", "--no-progress")
    one_line(res, 11)


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({
        "method": "sag", "output_dir": str(tmp_path / "run"),
        "model": {"preset": "tiny", "architecture": {"image_size": 32, "iterations": 1}},
        "data": {"train": "shapes:train?length=2&image_size=32"},
        "optim": {"total_steps": 1, "batch_size": 2, "warmup_steps": 0},
        "schedule": {"eval_limit": 0}}))
    return path


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut off"])
def test_a_truncated_or_empty_checkpoint_is_exit_7(tmp_path, content):
    recipe = _recipe(tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(content)
    res = run("train", recipe)
    one_line(res, 7)
    assert "not a readable checkpoint" in res.output and "--no-resume" in res.output
    assert ckpt.read_bytes() == content  # kept for the user to look at


def test_a_checkpoint_of_another_model_is_exit_7(tmp_path):
    from wsris.training.loop import save_checkpoint

    recipe = _recipe(tmp_path)
    save_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", {
        "model": {"other.weight": torch.zeros(2)}, "optimizer": {}, "scheduler": {},
        "torch_rng": torch.get_rng_state(), "step": 1})
    res = run("train", recipe)
    one_line(res, 7)
    assert "saved by another model or recipe" in res.output


def test_an_unwritable_training_folder_is_exit_11(tmp_path):
    recipe = _recipe(tmp_path)
    res = run("train", recipe, "--output-dir", "/proc/no/run")
    one_line(res, 11)
    assert "cannot write the training run" in res.output
