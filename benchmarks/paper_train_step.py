"""Paper-size training steps on a GPU: time, peak memory and the papers' GPU-hours.

    python -m benchmarks.paper_train_step [--device cuda] [--reps 10] [--warmup 3]
        [--json benchmarks/results/paper_train_step.json] [--doc docs/performance.md]
    python -m benchmarks.paper_train_step --smoke --device cpu --json /tmp/smoke.json

Measures one optimiser step of each paper recipe as ``wsris train`` takes it (autocast as
the recipe's ``amp`` says: bf16 on GPUs that have it, else fp16 with a gradient scaler;
gradient clipping; the recipe's optimiser): SaG's ``configs/sag_refcoco.yaml`` (ViT-S/16
at 384 px, BERT-base, K = 36, batch 32) and chunk's ``configs/chunk_refcocop.yaml``
(ALBEF-base at 384 px, batch 32, the chunk losses with their Grad-CAM). Weights are random
(a step costs the same whatever the weights) and the batch is one batch of Shapes-Ref
scenes rendered at the recipe's input size, collated by the recipe's own objective and
reused for every step, so neither a download nor a dataset is needed and data loading is
not timed. Every figure is the median over ``reps`` steps after ``warmup`` steps; the peak
is ``torch.cuda.max_memory_allocated`` over the timed steps. GPU-hours are the median step
times the ``optim.total_steps`` of each paper recipe (their schedules: 50 epochs for SaG,
5 for chunk), training steps only (no evaluation, no data loading).

``--smoke`` runs the same code end to end on each method's ``tiny`` preset at batch 4,
one warm-up and one timed step: a check that the script works, not a measurement.
``--doc`` rewrites the section between the ``paper-train-step`` markers of
``docs/performance.md`` with the table (not with ``--smoke``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .common import machine_info, sync, write_report

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"sag": REPO / "configs" / "sag_refcoco.yaml",
           "chunk": REPO / "configs" / "chunk_refcocop.yaml"}
# the papers' schedules: every paper recipe of the method, by its total_steps
SCHEDULES = {"sag": ("sag_refcoco", "sag_refcocop", "sag_grefumd", "sag_phrasecut"),
             "chunk": ("chunk_refcoco", "chunk_refcocop", "chunk_grefumd")}
BEGIN, END = "<!-- paper-train-step:begin -->", "<!-- paper-train-step:end -->"


def recipe_for_benchmark(method: str, smoke: bool, batch: int | None = None) -> Any:
    """The paper recipe with random weights (no ``init``) and Shapes-Ref scenes at its
    input size as data; ``smoke``: the method's tiny preset at batch 4."""
    from wsris.training import TrainConfig

    config = TrainConfig.from_yaml(RECIPES[method])
    config.model = copy.deepcopy(config.model)
    config.model["init"] = {}
    if smoke:
        config.model["preset"] = "tiny"
        config.model.pop("architecture", None)
        config.optim.batch_size = 4
    if batch is not None:
        config.optim.batch_size = batch
    from wsris.training.config import model_config

    size = model_config(config)["architecture"]["image_size"]
    config.data = {**config.data, "train": f"shapes:train?image_size={size}",
                   "val": f"shapes:val?image_size={size}"}
    return config


class PaperStep:
    """One recipe's objective, optimiser and a fixed collated batch on ``device``."""

    def __init__(self, method: str, device: torch.device, smoke: bool,
                 batch: int | None = None) -> None:
        from wsris.training.loop import (
            StepSampler,
            _texts_per_image,
            autocast_settings,
            build_optimizer,
        )
        from wsris.training.objectives import build_objective

        self.method = method
        self.config = recipe_for_benchmark(method, smoke, batch)
        self.device = device
        self.objective = build_objective(self.config, device)
        self.objective.train()
        self.model = self.objective.model
        self.params = sum(p.numel() for p in self.model.parameters())
        optim = self.config.optim
        self.optimizer = build_optimizer(self.model, optim)
        self.amp, self.amp_dtype = autocast_settings(self.config, device)
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.amp and self.amp_dtype == torch.float16)
        data = self.objective.train_stages()[-1][1]
        sampler = StepSampler(len(data), optim.batch_size, 0,
                              group=_texts_per_image(data, optim))
        self.batch = self.objective.collate([data[i] for i in sampler.indices(0)], data)
        self.batch_size = optim.batch_size
        self.grad_clip = optim.grad_clip

    def step(self) -> float:
        """Seconds of one training step (forward, backward, clipping, optimiser)."""
        sync(self.device)
        t0 = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            losses = self.objective(self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        sync(self.device)
        return time.perf_counter() - t0


def use_chunk_stand_in_without_spacy() -> bool:
    """Where no spaCy model loads (the GPU image has none), the chunk objective gets
    fixed two-word chunks instead of spaCy's noun chunks: the losses then cost what they
    cost with spaCy's (parsing is cached after the first step and never timed). Returns
    whether the stand-in is in use; the report says so."""
    from wsris.blocks import noun_chunks as nc
    from wsris.errors import WsrisError

    try:
        nc.parse_expressions(["the red cup on the left"])
        return False
    except (WsrisError, ImportError, OSError):
        pass

    def two_word_chunks(batch: Any, tokenizer: Any = None) -> Any:
        words, positions, adjacency = [], [], []
        for row in batch.word_ids:
            present = sorted(nc.word_positions(row))
            chunks = [present[i:i + 2] for i in range(0, len(present), 2)]
            words.append(chunks)
            positions.append(nc.chunk_positions(chunks, row))
            adjacency.append(nc.chunk_adjacency(len(chunks)))
        return nc.ChunkBatch(words, positions, adjacency, [False] * len(words))

    import wsris.methods.chunk.objective as chunk_objective

    chunk_objective.chunk_batch = two_word_chunks
    return True


def schedules(method: str) -> dict[str, int]:
    """``total_steps`` of each paper recipe of ``method``."""
    from wsris.training import TrainConfig

    return {name: TrainConfig.from_yaml(REPO / "configs" / f"{name}.yaml").optim.total_steps
            for name in SCHEDULES[method]}


def measure(method: str, device: torch.device, reps: int, warmup: int,
            smoke: bool, batch: int | None = None, budget_s: float = 200.0) -> dict[str, Any]:
    """One recipe's figures; the timed steps stop early (at least one) once the method
    has taken ``budget_s`` seconds, so that the whole run stays inside 9 minutes."""
    start = time.perf_counter()
    stand_in = method == "chunk" and use_chunk_stand_in_without_spacy()
    t_build = time.perf_counter()
    run = PaperStep(method, device, smoke, batch)
    build_s = time.perf_counter() - t_build
    for _ in range(warmup):
        run.step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    while len(times) < reps and (not times or time.perf_counter() - start < budget_s):
        times.append(run.step())
    peak = (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None
    median = statistics.median(times)
    steps = schedules(method)
    arch = run.objective.model_config["architecture"]
    result = {
        "recipe": RECIPES[method].name, "preset": run.config.model.get("preset"),
        "params": run.params, "batch": run.batch_size, "image_size": arch["image_size"],
        "autocast": str(run.amp_dtype).replace("torch.", "") if run.amp else "off",
        "grad_scaler": run.scaler.is_enabled(), "build_seconds": round(build_s, 2),
        "step_seconds": {"median": median, "min": min(times), "max": max(times),
                         "all": times},
        "reps_done": len(times),
        "peak_memory_gib": peak,
        "chunks": "two-word stand-in (no spaCy model)" if stand_in else "spaCy noun chunks"
        if method == "chunk" else None,
        "gpu_hours": {name: median * n / 3600 for name, n in steps.items()},
        "total_steps": steps,
    }
    del run
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def markdown(report: dict[str, Any]) -> str:
    """The docs/performance.md table of a report."""
    m = report["machine"]
    gpu = m.get("cuda_device") or m.get("device") or "?"
    lines = [
        f"Measured {m.get('date', '?')[:10]} on {gpu}, torch {m.get('torch', '?')}, "
        f"`python -m benchmarks.paper_train_step` (median of up to {report['reps']} steps after "
        f"{report['warmup']}; random weights, one fixed batch; training steps only).",
        "",
        "| recipe | parameters | batch | autocast | step (s) | peak GPU memory (GiB) "
        "| GPU-hours for the paper's schedule |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, r in report["methods"].items():
        hours = ", ".join(f"{name} {h:.1f} ({r['total_steps'][name]:,} steps)"
                          for name, h in r["gpu_hours"].items())
        peak = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "-"
        lines.append(f"| {method}: `{r['recipe']}` | {r['params'] / 1e6:.1f} M | {r['batch']} "
                     f"| {r['autocast']} | {r['step_seconds']['median']:.3f} | {peak} "
                     f"| {hours} |")
    return "\n".join(lines)


def update_doc(path: Path, table: str) -> None:
    """Replace what lies between the markers of ``path`` with ``table``."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")
    print(f"updated {path}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--methods", default="sag,chunk")
    ap.add_argument("--smoke", action="store_true", help="tiny presets, batch 4, 1 step")
    ap.add_argument("--budget-s", type=float, default=200.0,
                    help="seconds per method after which no further step is timed")
    ap.add_argument("--batch", type=int, default=None,
                    help="another batch size (a CPU check of the paper-size code path)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/results/paper_train_step.json")
    ap.add_argument("--doc", type=Path, default=None, help="docs/performance.md to update")
    args = ap.parse_args(argv)
    if args.smoke:
        args.reps, args.warmup = 1, 1
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as training on a GPU would
        torch.backends.cudnn.allow_tf32 = True
    report: dict[str, Any] = {"machine": machine_info(device), "smoke": args.smoke,
                              "batch_override": args.batch,
                              "reps": args.reps, "warmup": args.warmup, "methods": {}}
    for method in args.methods.split(","):
        r = measure(method, device, args.reps, args.warmup, args.smoke, args.batch,
                    args.budget_s)
        report["methods"][method] = r
        peak = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        print(f"{method}: {r['params'] / 1e6:.1f} M params, batch {r['batch']}, "
              f"step {r['step_seconds']['median']:.3f} s, peak {peak} GiB, "
              + ", ".join(f"{k} {v:.1f} GPU-h" for k, v in r["gpu_hours"].items()), flush=True)
    write_report(args.json, report)
    table = markdown(report)
    print(table)
    if args.doc is not None and not args.smoke:
        update_doc(args.doc, table)
    return report


if __name__ == "__main__":
    main()
