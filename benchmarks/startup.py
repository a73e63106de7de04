"""What one ``wsris segment`` call costs from a cold process, phase by phase.

    nice -n 19 .venv/bin/python -m benchmarks.startup [--runs N] [--later K]
        [--json benchmarks/results/startup.json]

In one run, each figure the median of ``--runs`` fresh processes:

* ``bare_python``: ``python -c pass``; ``bare_torch``: ``python -c "import torch"``;
* ``help`` / ``models``: ``wsris --help`` and ``wsris models``, whole processes;
* ``cli_segment``: a real ``python -m wsris.cli segment IMAGE TEXT`` on each bundled
  model, whole process;
* the same call split into phases inside one process (a probe that does what the
  command does, step by step): ``interpreter`` (process wall minus everything below),
  ``torch_import``, ``other_imports`` (wsris, its CLI, the method's pipeline and model
  modules; what the first call needs, e.g. OpenCV and higra for the chunk method's
  proposals, is imported by that call), ``model_load`` (``wsris.load``), ``first_call``
  and ``later_call``
  (median of ``--later`` further calls, one expression each).

``overhead`` = everything that is neither the interpreter, nor torch's import, nor the
segmentation itself (``later_call``): ``other_imports + model_load + first_call -
later_call``. The goal: ``overhead <= torch_import``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "startup.json"
MODELS = ("albef-chunk-shapes", "sag-shapes")
IMAGE = REPO / "examples" / "shapes_scene.png"
TEXT = "the large red circle"

_PROBE = r"""
import time
t0 = time.perf_counter()
import os, sys
model, image, text, later, out = sys.argv[1:6]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as importing wsris first would
import torch
t1 = time.perf_counter()
import wsris
from wsris.cli import main  # noqa: F401  (the command line's own imports)
from wsris.api import Segmenter  # noqa: F401
from wsris.weights.manifest import get_spec
import importlib
spec = get_spec(model)
importlib.import_module(f"wsris.pipelines.{spec.method}")  # and the model it imports
t2 = time.perf_counter()
seg = wsris.load(model, device="cpu")
t3 = time.perf_counter()
r = seg.segment(image, text)
r.save(out)
t4 = time.perf_counter()
laters = []
for _ in range(int(later)):
    s = time.perf_counter()
    seg.segment(image, text).save(out)
    laters.append(time.perf_counter() - s)
import json, statistics
print(json.dumps({"in_process": t4 - t0, "torch_import": t1 - t0, "other_imports": t2 - t1,
                  "model_load": t3 - t2, "first_call": t4 - t3,
                  "later_call": statistics.median(laters) if laters else None,
                  "modules": sorted(m for m in sys.modules if "." not in m
                                    and not m.startswith("_"))}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def wall(cmd: list[str], runs: int) -> float:
    """Median wall seconds of ``cmd`` as a fresh process."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=_env(), cwd=REPO, check=True, capture_output=True, timeout=600)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def phases(model: str, runs: int, later: int, out: str) -> dict[str, Any]:
    """Median of each phase over ``runs`` fresh probe processes."""
    rows = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, model, str(IMAGE), TEXT, str(later), out],
            env=_env(), cwd=REPO, capture_output=True, text=True, timeout=600,
        )
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["process_wall"] = total
        row["interpreter"] = total - row["in_process"]
        rows.append(row)
    keys = ("process_wall", "interpreter", "torch_import", "other_imports", "model_load",
            "first_call", "later_call")
    med = {k: round(statistics.median(r[k] for r in rows), 3) for k in keys}
    med["overhead"] = round(
        med["other_imports"] + med["model_load"] + med["first_call"] - med["later_call"], 3)
    med["top_level_modules"] = rows[-1]["modules"]
    return med


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--later", type=int, default=5)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    from .common import load_average, write_report

    py = sys.executable
    out: dict[str, Any] = {"what": "cold-process cost of wsris commands (seconds, medians)",
                           "runs": args.runs, "load_average_before": load_average()}
    out["bare_python"] = round(wall([py, "-c", "pass"], args.runs), 3)
    out["bare_torch"] = round(wall([py, "-c", "import torch"], args.runs), 3)
    out["help"] = round(wall([py, "-m", "wsris.cli", "--help"], args.runs), 3)
    out["models"] = round(wall([py, "-m", "wsris.cli", "models"], args.runs), 3)
    print(f"python {out['bare_python']} s, import torch {out['bare_torch']} s, "
          f"wsris --help {out['help']} s, wsris models {out['models']} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        mask = str(Path(tmp) / "mask.png")
        for model in MODELS:
            cli = wall([py, "-m", "wsris.cli", "segment", str(IMAGE), TEXT, "--model", model,
                        "--out", mask, "--overwrite"], args.runs)
            row = {"cli_segment": round(cli, 3), **phases(model, args.runs, args.later, mask)}
            out[model] = row
            print(f"{model}: cli {row['cli_segment']} s = interpreter {row['interpreter']} + "
                  f"torch {row['torch_import']} + imports {row['other_imports']} + load "
                  f"{row['model_load']} + first {row['first_call']} (later "
                  f"{row['later_call']}); overhead {row['overhead']} vs torch "
                  f"{row['torch_import']}", flush=True)
    out["load_average_after"] = load_average()
    write_report(args.json, out)


if __name__ == "__main__":
    main()
