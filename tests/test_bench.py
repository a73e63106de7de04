"""Smoke test of the benchmark runner (``python -m benchmarks.run --quick``) on the tiny
models: the JSON it writes, and that the upstream way and wsris give the same maps.
No timing is asserted: speed is measured by the benchmarks, never in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("higra")
pytestmark = pytest.mark.slow  # the report fixture runs the benchmark in a subprocess

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.methods import COMPARED_OPTIONS, map_differences  # noqa: E402
from benchmarks.models import build  # noqa: E402
from benchmarks.upstream import as_upstream  # noqa: E402

COUNT_KEYS = {"1", "4", "16"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The runner in its own process, as users run it (it sets the OpenMP wait policy
    before importing PyTorch)."""
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--device", "cpu", "--reps", "1",
         "--sections", "chunk,sag,stages,proposals", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wsris vs upstream way" in proc.stdout
    return json.loads(out.read_text())


def test_json_records_the_machine_and_settings(report: dict) -> None:
    meta = report["meta"]
    assert report["schema"] == 1
    for key in ("date", "cpu", "cpu_cores", "torch", "torch_threads", "device",
                "load_average_start", "load_average_end", "memory_method", "dtype"):
        assert key in meta, key
    assert meta["device"] == "cpu" and meta["quick"] is True and meta["sizes"] == ["tiny"]


@pytest.mark.parametrize("method", ["chunk", "sag"])
def test_wsris_against_upstream_figures_and_equal_maps(report: dict, method: str) -> None:
    res = report["results"][method]["tiny"]
    assert set(res["counts"]) == COUNT_KEYS and len(res["texts"]) == 16
    for entry in res["counts"].values():
        for way in ("ours", "upstream"):
            figures = entry[way]
            assert figures["seconds"] > 0 and figures["expressions_per_second"] > 0
            assert figures["seconds_per_expression"] > 0 and figures["runs"]
            # a segment call allocates tensors: its peak is a positive, finite figure
            assert 0 < figures["peak_memory_mb"] < 10_000, figures
        assert entry["speedup"] > 0 and entry["speedup_paired"] > 0
    for name, diff in res["maps"].items():
        assert diff["max_rel_diff"] < 1e-4, (method, name, diff)


def test_stage_proposal_and_target_sections(report: dict) -> None:
    stages = report["results"]["stages"]["tiny"]["counts"]
    assert set(stages) == COUNT_KEYS
    assert {"gradcam", "gradcam+affinity", "all", "proposals_only"} <= set(stages["16"])
    prop = report["results"]["proposals"]
    assert set(prop["timing"]) == {"384x384", "640x480"}
    assert 0.0 <= prop["abo"]["128px"]["abo"] <= 1.0
    names = {(t["target"], t["size"]) for t in report["targets"]}
    assert len(names) == 3 and all(isinstance(t["met"], bool) for t in report["targets"])
    assert "chunk Grad-CAM" in bench_run.format_tables(report)


def test_the_equality_check_is_not_vacuous() -> None:
    """A different Grad-CAM layer on the upstream side must show up as a difference."""
    bm = build("chunk", "tiny", "cpu")
    options = COMPARED_OPTIONS["chunk"]
    ours = bm.segmenter.segment(bm.image, bm.texts[:3], **options)
    other = as_upstream(bm.segmenter).segment(bm.image, bm.texts[:3], gradcam_layer=4, **options)
    assert map_differences(ours, other, ("gradcam",))["gradcam"]["max_rel_diff"] > 1e-3


def test_the_benchmarks_are_not_a_user_command() -> None:
    from click.testing import CliRunner

    from wsris.cli import main

    # the benchmarks are not in the installed package: `make bench` runs them
    assert CliRunner().invoke(main, ["bench"]).exit_code == 2


def test_peak_memory_measures_a_known_allocation() -> None:
    """The CPU probe sees a 64 MiB buffer written inside the block, and ~nothing without."""
    import numpy as np
    import torch

    from benchmarks.common import peak_memory

    with peak_memory(torch.device("cpu")) as mem:
        buf = np.ones(64 * 2**20, dtype=np.uint8)
        buf.sum()
        del buf
    assert 60 <= mem["mb"] <= 200, mem
    with peak_memory(torch.device("cpu")) as idle:
        pass
    assert idle["mb"] < 16, idle
