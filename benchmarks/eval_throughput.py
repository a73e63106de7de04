"""Throughput of the evaluation loop (``wsris eval``) in one process and in two
``torchrun`` processes.

Each measurement is a fresh subprocess running this module with ``--worker``: it loads
the benchmark model, makes one warm-up call, waits for its peers, and times
``wsris.evaluation.evaluate`` (the loop behind ``wsris eval``: data generation, model,
metrics, and under torchrun the round-robin sharding and the final all-gather) on the
first ``limit`` Shapes-Ref val samples, without the trivial baselines. The launcher also
records each subprocess's wall-clock time, start-up included. ``end_to_end`` runs the
real command line (``python -m wsris.cli eval``, what ``wsris eval`` runs) on the
bundled model.

    python -m benchmarks.eval_throughput --worker --method chunk --size tiny --limit 40 \
        --out /tmp/one.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import rounded
from .models import REPO


def _threads(processes: int, threads: int | None) -> int | None:
    """Threads per process: as asked (or torch's default) for one process; the cores
    (or ``threads``) shared out for several, as torchrun does."""
    if processes == 1:
        return threads
    return max(1, (threads or os.cpu_count() or 1) // processes)


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _torchrun(nproc: int) -> list[str]:
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(port)]


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def measure(method: str, size: str, limit: int, device: str, processes: int,
            threads: int | None = None, dtype: str | None = None,
            timeout: float = 1800) -> dict[str, Any]:
    """Samples per second of the evaluation loop with ``processes`` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timing.json"
        worker = ["-m", "benchmarks.eval_throughput", "--worker", "--method", method,
                  "--size", size, "--limit", str(limit), "--device", device, "--out", str(out)]
        if dtype:
            worker += ["--dtype", dtype]
        cmd = [sys.executable, *worker] if processes == 1 else [*_torchrun(processes), *worker]
        wall = _run(cmd, _env(_threads(processes, threads)), timeout)
        result = json.loads(out.read_text())
    result["wall_seconds"] = rounded(wall)
    result["wall_samples_per_second"] = rounded(result["samples"] / wall)
    return result


def end_to_end(limit: int, processes: int, threads: int | None = None,
               timeout: float = 1800) -> dict[str, Any]:
    """Wall-clock of ``python -m wsris.cli eval --model albef-chunk-shapes`` (what
    ``wsris eval`` runs), start-up included."""
    args = ["-m", "wsris.cli", "eval", "--model", "albef-chunk-shapes", "--data", "shapes:val",
            "--limit", str(limit), "--no-baseline", "--no-progress", "--device", "cpu"]
    cmd = [sys.executable, *args] if processes == 1 else [*_torchrun(processes), *args]
    wall = _run(cmd, _env(_threads(processes, threads)), timeout)
    return {"processes": processes, "samples": limit, "wall_seconds": rounded(wall),
            "samples_per_second": rounded(limit / wall)}


def bench_eval(models: list[tuple[str, str, int]], device: str = "cpu",
               threads: int | None = None, e2e_limit: int | None = None,
               dtype: str | None = None) -> dict[str, Any]:
    """For each ``(method, size, limit)``: 1 process, then 2 torchrun processes."""
    out: dict[str, Any] = {"data": "shapes:val", "runs": {}}
    for method, size, limit in models:
        one = measure(method, size, limit, device, 1, threads, dtype)
        two = measure(method, size, limit, device, 2, threads, dtype)
        out["runs"][f"{method}-{size}"] = {
            "samples": limit,
            "one_process": one,
            "two_processes": two,
            "speedup": rounded(two["samples_per_second"] / one["samples_per_second"], 3),
        }
    if e2e_limit:
        out["end_to_end_cli"] = {
            "one_process": end_to_end(e2e_limit, 1, threads),
            "two_processes": end_to_end(e2e_limit, 2, threads),
        }
    return out


# ----------------------------------------------------------------------- worker


def worker(method: str, size: str, limit: int, device: str, out: Path,
           dtype: str | None = None) -> None:
    """One process of a measurement (see the module docstring)."""
    import torch
    import torch.distributed as dist

    from wsris.data.shapes import ShapesRef
    from wsris.evaluation import evaluate

    from .models import build

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        bm = build(method, size, device, dtype)
        bm.segmenter.segment(bm.image, bm.texts[:2])  # warm-up: lazy initialisation
        dataset = ShapesRef("val").referring()
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        report = evaluate(dataset, bm.segmenter, limit=limit, baselines=False, progress=False)
        seconds = time.perf_counter() - t0
        if rank == 0:
            samples = int(report.meta["samples"])
            out.write_text(json.dumps({
                "processes": world,
                "threads_per_process": torch.get_num_threads(),
                "samples": samples,
                "loop_seconds": rounded(seconds),
                "samples_per_second": rounded(samples / seconds),
                "mIoU": rounded(report.metrics["model"]["mIoU"]),
            }))
    finally:
        if world > 1:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help="run one measuring process")
    ap.add_argument("--method", default="chunk", choices=("chunk", "sag"))
    ap.add_argument("--size", default="tiny", choices=("tiny", "paper"))
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="bfloat16 for CUDA autocast")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.worker:
        if args.out is None:
            ap.error("--worker needs --out")
        worker(args.method, args.size, args.limit, args.device, args.out, args.dtype)
        return 0
    print(json.dumps(bench_eval([(args.method, args.size, args.limit)], args.device), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
