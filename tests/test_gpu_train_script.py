"""lab/scripts/gpu_train.sh: its dry run checks the recipe and names the CUDA command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "lab" / "scripts" / "gpu_train.sh"), *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


def test_dry_run_checks_the_recipe_and_prints_the_training_command(tmp_path):
    out = _run("configs/sag_shapes.yaml", str(tmp_path / "run"), "--dry-run", "--minutes", "7",
               "--batch", "128", "--lr", "0.002")
    assert out.returncode == 0, out.stderr
    assert "recipe ok: sag conv stem" in out.stdout
    command = out.stdout.strip().splitlines()[-1]
    for part in ("train configs/sag_shapes.yaml", f"--output-dir {tmp_path / 'run'}",
                 "--device cuda", "--batch-size 128", "--lr 0.002", "--time-limit 7"):
        assert part in command
    assert not (tmp_path / "run").exists()  # nothing trained


def test_bad_arguments_exit_2(tmp_path):
    assert _run("missing.yaml", str(tmp_path)).returncode == 2
    assert _run("configs/sag_shapes.yaml").returncode == 2
    assert _run("configs/sag_shapes.yaml", str(tmp_path), "--bogus").returncode == 2
