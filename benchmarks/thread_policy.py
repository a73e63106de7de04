"""The thread policy on a loaded machine: Python API with and without it, and the CLI.

    .venv/bin/python -m benchmarks.thread_policy [--load N] [--reps R] [--rounds N]
        [--json benchmarks/results/thread_policy.json]

The benchmark starts its own competing CPU load (``--load`` busy processes, default one
per core, at the benchmark's own niceness) and then, in fresh processes, times the
per-expression cost of ``segment(image, texts)`` for 1 and 16 expressions on both
bundled models in three ways:

* ``api``: ``import wsris`` first, so wsris's policy (``OMP_WAIT_POLICY=PASSIVE``) holds;
* ``cli``: ``wsris segment IMAGE TEXT...`` run in-process through ``wsris.cli.main``,
  timing the ``Segmenter.segment`` call the command makes;
* ``api_without_policy``: ``import torch`` first with ``OMP_WAIT_POLICY`` unset, so the
  policy cannot apply (how the Python API ran before the policy moved into the package).

The CLI loads the model in every invocation, so its timed call is a Segmenter's first;
the API figures are timed the same way (a fresh ``wsris.load`` per timed call), and the
``*_warm_*`` figures are later calls on one Segmenter. Under a competing load one
process's calls run faster or slower than another's as a whole, so the API and the CLI
are timed by turns in the same process (``paired`` probe: API then CLI, then CLI then
API, ...), and ``api_over_cli_paired_median`` is the median over those pairs of API time
/ CLI time. The no-policy process and the paired one take turns too (``--rounds``
rounds, ``--reps`` timed pairs per probe after two untimed ones). The goal: ``api``
within 1.2x of ``cli``.
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
DEFAULT_JSON = REPO / "benchmarks" / "results" / "thread_policy.json"
MODELS = ("albef-chunk-shapes", "sag-shapes")
COUNTS = (1, 16)
PROBES = ("paired", "api_without_policy")

_PROBE = r"""
import json, sys, time
mode, model, k, reps, image_path, out_dir = sys.argv[1:7]
k, reps = int(k), int(reps)
if mode == "api_without_policy":
    import torch  # before wsris, OMP_WAIT_POLICY unset: the policy cannot apply
import warnings
warnings.simplefilter("ignore")
import wsris
from benchmarks.models import expressions
from wsris.api import Segmenter
from wsris.cli import main
texts = expressions(16)[:k]
cli_times = []
inner = Segmenter.segment
def timed_segment(self, *a, **kw):
    t0 = time.perf_counter()
    out = inner(self, *a, **kw)
    cli_times.append(time.perf_counter() - t0)
    return out
def api_call():
    # as the CLI does: a fresh Segmenter per call, the call timed (its first)
    seg = wsris.load(model, device="cpu")
    t0 = time.perf_counter()
    seg.segment(image_path, texts)
    return time.perf_counter() - t0, seg
def cli_call():
    Segmenter.segment = timed_segment
    try:
        main(["segment", image_path, *texts, "--model", model, "--out",
              out_dir + "/m.png", "--overwrite"], standalone_mode=False)
    finally:
        Segmenter.segment = inner
    return cli_times[-1]
api, cli = [], []
for r in range(reps + 2):  # the API and the CLI call by turns, in one process
    if mode == "paired" and r % 2:
        c = cli_call()
        a, seg = api_call()
    else:
        a, seg = api_call()
        c = cli_call() if mode == "paired" else None
    if r >= 2:
        api.append(a)
        if c is not None:
            cli.append(c)
warm = []  # later calls on one Segmenter
for _ in range(reps):
    t0 = time.perf_counter()
    seg.segment(image_path, texts)
    warm.append(time.perf_counter() - t0)
import torch
print(json.dumps({"api": api, "cli": cli, "warm": warm,
                  "threads": torch.get_num_threads(), "policy": wsris.thread_policy()}))
"""


def start_load(n: int) -> list[subprocess.Popen]:
    """``n`` busy processes at this process's niceness (they compete with the benchmark,
    not with higher-priority work on the machine)."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)
    ]


def probe(mode: str, model: str, k: int, reps: int, image: Path, out_dir: str) -> dict:
    env = {key: v for key, v in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = [sys.executable, "-c", _PROBE, mode, model, str(k), str(reps), str(image), out_dir]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {model} k={k}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2,
                        help="competing busy processes (default: one per core)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per turn")
    parser.add_argument("--rounds", type=int, default=4, help="turns of each probe")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    from .common import load_average, write_report

    image = REPO / "examples" / "shapes_scene.png"
    out: dict[str, Any] = {
        "what": "per-expression seconds of segment() under a competing CPU load",
        "competing_load_processes": args.load,
        "rounds": args.rounds,
        "reps_per_turn": args.reps,
        "cpu_count": os.cpu_count(),
        "niceness": os.nice(0),
        "load_average_before": load_average(),
        "results": [],
    }
    load = start_load(args.load)
    try:
        time.sleep(2.0)
        with tempfile.TemporaryDirectory() as tmp:
            for model in MODELS:
                for k in COUNTS:
                    row: dict[str, Any] = {"model": model, "k": k}
                    got_api: dict[str, list[float]] = {p: [] for p in PROBES}
                    got_warm: dict[str, list[float]] = {p: [] for p in PROBES}
                    cli: list[float] = []
                    for r in range(args.rounds):
                        for name in PROBES[r % 2:] + PROBES[: r % 2]:  # by turns
                            got = probe(name, model, k, args.reps, image, tmp)
                            got_api[name] += got["api"]
                            got_warm[name] += got["warm"]
                            cli += got["cli"]
                            row[f"{name}_policy"] = got["policy"]
                            row["threads"] = got["threads"]
                    per_expr = {"api": got_api["paired"], "cli": cli,
                                "api_without_policy": got_api["api_without_policy"]}
                    for mode, values in per_expr.items():
                        row[f"{mode}_per_expression_s"] = round(statistics.median(values) / k, 5)
                    for mode, name in (("api", "paired"), ("api_without_policy",) * 2):
                        row[f"{mode}_warm_per_expression_s"] = round(
                            statistics.median(got_warm[name]) / k, 5)
                    # each API call against the CLI call next to it in the same process
                    row["api_over_cli_paired_median"] = round(statistics.median(
                        a / c for a, c in zip(got_api["paired"], cli, strict=True)), 3)
                    row["api_over_cli"] = round(
                        row["api_per_expression_s"] / row["cli_per_expression_s"], 3)
                    row["without_over_with_policy"] = round(
                        row["api_without_policy_per_expression_s"]
                        / row["api_per_expression_s"], 3)
                    out["results"].append(row)
                    print(f"{model:20s} k={k:2d}  api {row['api_per_expression_s']:.4f}  "
                          f"no-policy {row['api_without_policy_per_expression_s']:.4f}  "
                          f"cli {row['cli_per_expression_s']:.4f} s/expr  "
                          f"api/cli {row['api_over_cli']} "
                          f"(paired {row['api_over_cli_paired_median']})", flush=True)
        out["load_average_after"] = load_average()
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    write_report(args.json, out)


if __name__ == "__main__":
    main()
