"""No run deletes or replaces what it did not create; racing runs cannot clobber each
other; interrupted and killed runs leave nothing hidden behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_cli import run
from tests.test_refer import refer_root  # noqa: F401  (fixture)
from wsris.cli.outputs import OutputPlan, remove_leftovers, temp_prefix
from wsris.errors import OutputError

REPO = Path(__file__).resolve().parents[1]


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and its content hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def binary_mask(path: Path) -> Path:
    """A file that looks exactly like a wsris mask (one channel, 0 and 255)."""
    values = np.zeros((6, 6), np.uint8)
    values[1:3, 1:3] = 255
    Image.fromarray(values).save(path, format="PNG")
    return path


# 1. --overwrite never touches inputs or files the run would not have written


def test_overwrite_keeps_the_input_that_looks_like_a_stale_mask(tiny_folder, image, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    photo = shots / "photo_5.png"
    photo.write_bytes(image.read_bytes())
    before = photo.read_bytes()
    res = run("segment", photo, "the red circle", "the blue square", "--model", tiny_folder,
              "-o", shots / "photo.png", "--overwrite")
    assert res.exit_code == 0, res.output
    assert photo.read_bytes() == before
    assert sorted(p.name for p in shots.iterdir()) == ["photo_0.png", "photo_1.png",
                                                       "photo_5.png"]


def test_overwrite_into_the_input_folder_keeps_every_input(tiny_folder, image, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("cat.png", "cat_7.png", "cat_12.png"):
        (shots / name).write_bytes(image.read_bytes())
    # even an input that is itself a binary mask is an input
    binary_mask(shots / "cat_3.png")
    inputs = digest(shots)
    res = run("segment", shots, "A", "B", "--model", tiny_folder, "--out-dir", shots,
              "--overwrite", "--no-progress")
    assert res.exit_code == 0, res.output
    after = digest(shots)
    assert {k: after[k] for k in inputs} == inputs
    assert set(after) - set(inputs) == {f"{s}_{i}.png" for s in ("cat", "cat_7", "cat_12",
                                                                 "cat_3") for i in (0, 1)}


def test_only_real_stale_masks_are_removed(tiny_folder, image, tmp_path):
    """A stale mask goes; a photo, a zero-padded name and a symlink of that family stay."""
    binary_mask(tmp_path / "m_4.png")  # what a wsris run with 5 texts would have left
    (tmp_path / "m_5.png").write_bytes(image.read_bytes())  # a colour photo
    binary_mask(tmp_path / "m_07.png")  # numbered() never writes a leading zero
    (tmp_path / "m_9.png").symlink_to(tmp_path / "m_07.png")
    keep = digest(tmp_path)
    del keep["m_4.png"]
    res = run("segment", image, "a", "b", "--model", tiny_folder, "-o", tmp_path / "m.png",
              "--overwrite")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "m_4.png").exists()
    after = digest(tmp_path)
    assert {k: after[k] for k in keep} == keep
    assert (tmp_path / "m_9.png").is_symlink()


def test_a_photo_in_the_family_is_not_a_reason_to_refuse(tiny_folder, image, tmp_path):
    (tmp_path / "m_5.png").write_bytes(image.read_bytes())
    res = run("segment", image, "a", "b", "--model", tiny_folder, "-o", tmp_path / "m.png")
    assert res.exit_code == 0, res.output


def _export(source, target, *extra):
    return run("export", source, target, *extra)


def test_export_refuses_a_project_folder(tiny_folder, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my project\n")
    (project / "notes.txt").write_text("keep\n")
    before = digest(project)
    monkeypatch.chdir(project)
    for target in (".", project):
        for extra in ((), ("--overwrite",)):
            res = _export(tiny_folder, target, *extra)
            assert res.exit_code == 11, res.output
            assert "not empty and not a wsris model" in res.output
            assert digest(project) == before


def test_export_replaces_another_model_only_with_overwrite(tiny_folder, tmp_path):
    target = tmp_path / "other_model"
    assert _export(tiny_folder, target).exit_code == 0
    config = json.loads((target / "config.json").read_text())
    config["name"] = "another model"
    (target / "config.json").write_text(json.dumps(config))
    before = digest(target)
    res = _export(tiny_folder, target)
    assert res.exit_code == 11 and "--overwrite" in res.output
    assert digest(target) == before
    res = _export(tiny_folder, target, "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads((target / "config.json").read_text())["name"] == "tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_model"]  # nothing aside


def test_export_keeps_a_model_folder_with_other_files(tiny_folder, tmp_path):
    target = tmp_path / "m"
    assert _export(tiny_folder, target).exit_code == 0
    (target / "training_notes.txt").write_text("mine\n")
    before = digest(target)
    res = _export(tiny_folder, target, "--overwrite")
    assert res.exit_code == 11 and "training_notes.txt" in res.output
    assert digest(target) == before


def test_export_that_fails_midway_leaves_the_old_model_whole(tiny_folder, tmp_path,
                                                             monkeypatch):
    """A full disk while writing the weights: the earlier export is kept as it was and no
    half-written folder stays beside it."""
    import safetensors.torch

    target = tmp_path / "m"
    assert _export(tiny_folder, target).exit_code == 0
    before = digest(target)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    res = _export(tiny_folder, target, "--overwrite")
    assert res.exit_code == 11 and "No space left on device" in res.output, res.output
    assert digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_eval_json_is_checked_before_the_evaluation(refer_root, monkeypatch):  # noqa: F811
    import wsris.evaluation.loop as loop

    def refuse(*args, **kwargs):
        raise AssertionError("the evaluation ran before --json was refused")

    monkeypatch.setattr(loop, "evaluate", refuse)
    data = f"refcoco+:unc:val@{refer_root}"
    annotations = refer_root / "refcoco+" / "instances.json"
    before = digest(refer_root)
    for extra in ((), ("--overwrite",)):  # a dataset file: never, even with --overwrite
        res = run("eval", "--data", data, "--json", annotations, *extra)
        assert res.exit_code == 11 and "input" in res.output, res.output
    assert digest(refer_root) == before
    res = run("eval", "--data", data, "--json", "/proc/report.json")
    assert res.exit_code == 11 and "cannot write" in res.output
    assert "Traceback" not in res.output


def test_eval_json_needs_overwrite_and_is_written_whole(refer_root, tmp_path):  # noqa: F811
    data = f"refcoco+:unc:val@{refer_root}"
    reports = tmp_path / "reports"
    reports.mkdir()
    report = reports / "r.json"
    report.write_text("mine\n")
    res = run("eval", "--data", data, "--json", report, "--no-progress")
    assert res.exit_code == 11 and "--overwrite" in res.output
    assert report.read_text() == "mine\n"
    res = run("eval", "--data", data, "--json", report, "--overwrite", "--no-progress")
    assert res.exit_code == 0, res.output
    assert json.loads(report.read_text())["meta"]["samples"] >= 1
    assert sorted(p.name for p in reports.iterdir()) == ["r.json"]


# 2. Racing writers


def test_a_path_taken_between_prepare_and_commit_is_not_clobbered(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    plan = OutputPlan()
    plan.add(first, "mask", mask=True)
    plan.add(second, "mask", mask=True)
    plan.prepare()
    for path in (first, second):
        plan.write(path, lambda p, f: binary_mask(p))
    second.write_text("the other run's mask")  # another process won the race for b.png
    with pytest.raises(OutputError, match="created by someone else"):
        plan.commit()
    assert second.read_text() == "the other run's mask"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png"]  # a.png taken back


def test_two_racing_runs_exactly_one_wins(tiny_folder, image, tmp_path):
    out = tmp_path / "race.png"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "wsris.cli", "segment", str(image), "red",
               "--model", str(tiny_folder), "-o", str(out), "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 11], results
    loser = next(err for code, _, err in results if code == 11)
    assert "Traceback" not in loser and loser.startswith("wsris: error: ")
    winner = next(json.loads(o) for code, o, _ in results if code == 0)
    area = int((np.asarray(Image.open(out)) == 255).sum())
    assert winner["results"][0]["area"] == area
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.png", "scene.png"]


# 3. Interrupted and killed runs


def _slow_segment_script(out: Path) -> str:
    """A segment run that stops inside the model until it is signalled."""
    return (
        "import sys, time, runpy\n"
        "import wsris.api\n"
        "real = wsris.api.Segmenter.segment\n"
        "def slow(self, *a, **k):\n"
        f"    open({str(out) + '.ready'!r}, 'w').close()\n"
        "    while True: time.sleep(0.05)\n"
        "wsris.api.Segmenter.segment = slow\n"
        "sys.argv = ['wsris'] + sys.argv[1:]\n"
        "runpy.run_module('wsris.cli', run_name='__main__')\n"
    )


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_sigint_clean_up(tiny_folder, image, tmp_path, sig, code, word):
    outs = tmp_path / "outs"
    outs.mkdir()
    marker = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _slow_segment_script(marker), "segment", str(image), "a", "b",
         "--model", str(tiny_folder), "-o", str(outs / "m.png")],
        stderr=subprocess.PIPE, text=True, env=env)
    ready = Path(str(marker) + ".ready")
    try:
        while not ready.exists():  # waits on an event, not a clock
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        assert len(list(outs.iterdir())) == 2  # the two hidden temporary masks
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr.read().strip().splitlines()[-1] == f"wsris: {word}"
    assert list(outs.iterdir()) == []


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run(tiny_folder, image,
                                                                   tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs
    left = tmp_path / f".m.png.wsris-{dead.pid}-abc123.part"
    left.write_bytes(b"half a mask")
    export_left = tmp_path / f".model.wsris-{dead.pid}-xyz.part"
    export_left.mkdir()
    (export_left / "config.json").write_text("{}")
    live = tmp_path / f"{temp_prefix('other.png')}live.part"  # this process: alive
    live.write_bytes(b"")
    lookalike = tmp_path / ".m.png.abc.part"  # not a wsris name
    lookalike.write_bytes(b"")
    res = run("segment", image, "red", "--model", tiny_folder, "-o", tmp_path / "m.png")
    assert res.exit_code == 0, res.output
    assert not left.exists() and not export_left.exists()
    assert live.exists() and lookalike.exists()
    assert remove_leftovers(tmp_path) == []


def test_training_removes_a_killed_runs_temporary_checkpoint(tmp_path):
    from wsris.training.loop import remove_checkpoint_leftovers, save_checkpoint

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / f".last.pt.wsris-{dead.pid}-q1.part").write_bytes(b"half")
    (folder / "last.tmp").write_bytes(b"half, as earlier versions named it")
    save_checkpoint(folder / "last.pt", {"step": 1})
    remove_checkpoint_leftovers(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt"]


def test_interrupted_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import torch

    from wsris.training.loop import save_checkpoint

    def interrupted(state, path):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert list(tmp_path.iterdir()) == []
