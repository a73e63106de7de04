"""Where a training step's time goes, for one or more recipes measured in one run.

    .venv/bin/python -m benchmarks.train_step configs/ablations/chunk_vit_scratch.yaml \
        configs/chunk_shapes.yaml [--batch 32] [--threads 1] [--reps 5] [--step N]
        [--json benchmarks/results/train_step.json]

Each step is split into: ``data`` (reading and collating one batch from the recipe's
curriculum stage that ``--step`` falls in; a ``cache=`` spec reads pre-rendered scenes,
``shapes:`` renders them), the model parts of the forward pass (for chunk: image
encoder, text encoder, fusion with the ITM head; for SaG: image encoder, slot discovery,
text encoder, fusion, decoder), ``loss`` (the rest of the forward: contrastive and
matching losses, negative mining, Grad-CAM when the chunk losses are on), ``backward``
and ``optimiser``. Parts are timed by wrapping the model's own methods, so nothing of
the step is left out: the parts add up to the step. Every figure is the median over
``reps`` steps after one warm-up step; recipes are interleaved step by step so that
machine load hits them alike. The last column is each recipe's step time relative to the
first recipe's.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from .common import write_report  # noqa: E402

#: Model methods timed as parts of the forward pass, per method.
PARTS: dict[str, dict[str, str]] = {
    "chunk": {"encode_image": "image encoder", "encode_text": "text encoder",
              "fuse": "fusion", "itm_logits": "fusion"},
    "sag": {"encode_image": "image encoder", "discover": "slots", "encode_text": "text encoder",
            "fuse": "fusion", "decode": "decoder"},
}
COLUMNS = ("data", "image encoder", "text encoder", "slots", "fusion", "decoder", "loss",
           "backward", "optimiser")


class PartTimer:
    """Wraps model methods so each call adds its wall time to a named part. A part
    called from inside another (e.g. ``itm_logits`` within ``fuse``) counts only once."""

    def __init__(self, model: torch.nn.Module, parts: dict[str, str]) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._depth = 0
        for method, part in parts.items():
            if hasattr(model, method):
                setattr(model, method, self._wrap(getattr(model, method), part))

    def _wrap(self, fn, part: str):
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[part] += time.perf_counter() - t0
                self._depth -= 1

        return timed


class RecipeStep:
    def __init__(self, recipe: Path, batch: int, step: int) -> None:
        from wsris.training import TrainConfig
        from wsris.training.objectives import build_objective

        self.name = recipe.stem
        self.config = TrainConfig.from_yaml(recipe)
        self.config.optim.batch_size = batch
        self.objective = build_objective(self.config, torch.device("cpu"))
        self.objective.set_step(step)
        self.timer = PartTimer(self.objective.model, PARTS[self.config.method])
        from wsris.training.loop import (
            StepSampler,
            _texts_per_image,
            autocast_settings,
            build_optimizer,
        )

        # the curriculum stage that ``step`` falls in, as the training loop would read
        self.data = next(data for until, data in self.objective.train_stages()
                         if until is None or step < until)
        self.sampler = StepSampler(len(self.data), batch, 0,
                                   group=_texts_per_image(self.data, self.config.optim))
        self.optimizer = build_optimizer(self.objective.model, self.config.optim)  # as training
        self.batch = batch
        # the recipe's own autocast setting, as the training loop applies it (cpu_amp)
        self.amp, self.amp_dtype = autocast_settings(self.config, torch.device("cpu"))
        self.params = sum(p.numel() for p in self.objective.model.parameters())
        self._next = 0

    def run(self) -> dict[str, float]:
        self.timer.totals.clear()
        t0 = time.perf_counter()
        idx = self.sampler.indices(self._next)
        self._next += 1
        batch = self.objective.collate([self.data[i] for i in idx], self.data)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=self.amp_dtype, enabled=self.amp):
            losses = self.objective(batch)
        t2 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        t3 = time.perf_counter()
        self.optimizer.step()
        t4 = time.perf_counter()
        parts = dict(self.timer.totals)
        out = {"data": t1 - t0, **parts, "loss": (t2 - t1) - sum(parts.values()),
               "backward": t3 - t2, "optimiser": t4 - t3}
        out["step"] = t4 - t0
        return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", nargs="+", type=Path)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--step", type=int, default=0,
                    help="training step the objectives act as at (curriculum switches)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/train_step.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runs = [RecipeStep(r, args.batch, args.step) for r in args.recipes]
    for r in runs:  # warm-up
        r.run()
    samples: dict[str, list[dict[str, float]]] = {r.name: [] for r in runs}
    for _ in range(args.reps):
        for r in runs:
            samples[r.name].append(r.run())
    result: dict[str, Any] = {
        "batch": args.batch, "threads": args.threads, "reps": args.reps, "step": args.step,
        "torch": torch.__version__, "load_average": os.getloadavg(), "recipes": {},
    }
    base = None
    header = f"{'recipe':24s} {'params':>7s} " + " ".join(f"{c[:9]:>9s}" for c in COLUMNS)
    print(header + f" {'step s':>7s} {'ratio':>6s}")
    for r in runs:
        med = {k: statistics.median(s.get(k, 0.0) for s in samples[r.name])
               for k in (*COLUMNS, "step")}
        base = med["step"] if base is None else base
        ratio = med["step"] / base
        result["recipes"][r.name] = {"recipe": str(r.config and r.name), "params": r.params,
                                     "cpu_bf16_autocast": r.amp,
                                     "seconds": med, "ratio_to_first": ratio}
        print(f"{r.name:24s} {r.params / 1e6:6.2f}M "
              + " ".join(f"{med[c]:9.4f}" for c in COLUMNS)
              + f" {med['step']:7.3f} {ratio:6.3f}")
    write_report(args.json, result)
    return result


if __name__ == "__main__":
    main()
