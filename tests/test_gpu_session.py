"""``lab/scripts/gpu_session.sh --dry-run``: one lease's steps on the CPU, and the packing of
what comes back into pieces that the device tool can return."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def unpack_session(out: Path, target: Path) -> set[str]:
    """Join the returned pieces (each within the device tool's 16 MiB), unpack them into
    ``target`` and return the archive's member names."""
    parts = sorted(out.glob("session.tgz.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    archive = target.parent / "session.tgz"
    archive.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
        return set(tar.getnames())


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
@pytest.mark.slow  # the GPU check's dry run and the packing, about 20 s
def test_dry_run_packs_every_result_in_small_pieces(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(REPO / "lab" / "scripts" / "gpu_session.sh"), "--dry-run"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = unpack_session(out, tmp_path / "unpacked")
    for name in ("gpu-compare.json", "gpu-chunk.json", "gpu-tests.xml", "train.log"):
        assert f"results/{name}" in names, sorted(names)
    unpacked = tmp_path / "unpacked"
    compare = json.loads((unpacked / "results" / "gpu-compare.json").read_text())
    assert compare["dry_run"] is True and compare["models"]
    train_log = (unpacked / "results" / "train.log").read_text()
    assert "dry run: would run" in train_log and "--device cuda" in train_log
    recipe = (unpacked / "recipe.yaml").read_text()
    assert "cache=/tmp/caches/train-default" in recipe  # rendered on the lent machine
    assert (out / "session.log").is_file()


def test_refuses_unknown_arguments():
    proc = subprocess.run(["bash", str(REPO / "lab" / "scripts" / "gpu_session.sh"), "--bogus"],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OUT": "/tmp/wsris-gpu-session-unused"})
    assert proc.returncode == 2 and "usage" in proc.stderr
