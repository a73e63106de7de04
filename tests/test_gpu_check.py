"""``lab/scripts/gpu_check.sh --dry-run``: the GPU check's steps, run on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
@pytest.mark.slow  # runs the whole check on the CPU (about 20 s)
def test_dry_run_writes_every_result(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "lab" / "scripts" / "gpu_check.sh"), "--dry-run"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu-summary.json").read_text())
    assert summary["dry_run"] is True
    for step in ("tests", "compare", "bench"):
        assert summary[step].startswith("rc=0 "), (step, summary[step], proc.stdout[-3000:])
    compare = json.loads((tmp_path / "gpu-compare.json").read_text())
    assert compare["device"] == "cpu" and len(compare["models"]) == 3
    for row in compare["models"].values():
        # both sides ran on the CPU: the same weights must give the same maps
        assert row["cpu_vs_cpu"]["max_abs_heatmap_diff"] == 0.0
        assert row["cpu_vs_cpu"]["min_mask_iou"] == 1.0
        assert set(row["autocast"]) == {"bfloat16", "float16"}
    chunk = json.loads((tmp_path / "gpu-chunk.json").read_text())
    assert chunk  # the benchmark runner wrote its report
    assert (tmp_path / "gpu-tests.xml").is_file()


def test_refuses_unknown_arguments():
    proc = subprocess.run(["bash", str(REPO / "lab" / "scripts" / "gpu_check.sh"), "--bogus"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage" in proc.stderr
