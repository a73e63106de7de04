"""One training loop for both methods.

AdamW with per-prefix learning-rate multipliers, linear warm-up then cosine decay,
gradient clipping, CUDA mixed precision, checkpoint/resume (exact: the data order is a
function of the step), a tqdm bar showing every loss term, a JSON-lines log, and
torchrun DDP (gloo on CPU, NCCL on GPUs). The method-specific part is an
:class:`Objective` from ``wsris.training.objectives``.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..device import resolve_device
from ..errors import OutputError, WeightsMismatchError
from .config import TrainConfig

CHECKPOINT = "last.pt"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_lambda(warmup: int, total: int):
    """Linear warm-up from 0 to 1 over ``warmup`` steps, then cosine to 0 at ``total``."""

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, lr_mult: dict[str, float]
) -> list[dict[str, Any]]:
    """Groups by (lr multiplier, decay): no decay for biases, norms, embeddings' scalars."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = 1.0
        for prefix, m in lr_mult.items():
            if name.startswith(prefix):
                mult = float(m)
        decay = p.ndim >= 2 and "norm" not in name.lower()
        groups.setdefault((mult, decay), []).append(p)
    return [
        {"params": ps, "lr": lr * mult, "weight_decay": weight_decay if decay else 0.0}
        for (mult, decay), ps in groups.items()
    ]


def build_optimizer(model: nn.Module, optim: Any) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, fused (one kernel over all tensors) where torch
    has it for the parameters' device: the same update, measured 5x faster than the
    per-tensor loop on a CPU (a chunk step's optimiser part 0.018 -> 0.004 s)."""
    groups = param_groups(model, optim.lr, optim.weight_decay, optim.lr_mult)
    try:
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas))


class StepSampler:
    """Dataset indices for global step ``s``: a seeded permutation per epoch, so that
    resuming at step ``s`` replays exactly the same data order. Under DDP each rank takes
    every ``world``-th index of the global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 group: int = 1):
        if n <= 0:
            raise ValueError("the training set is empty")
        if group < 1 or batch_size % group:
            raise ValueError(f"batch size {batch_size} is not a multiple of group {group}")
        # with group k, the permutation is over blocks of k consecutive samples (the k
        # expressions of one scene), which stay together in a batch
        self.group = group
        n //= group
        batch_size //= group
        self.n, self.batch, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self._epoch = -1
        self._perm: torch.Tensor | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=gen), epoch
        assert self._perm is not None
        return self._perm

    def indices(self, step: int) -> list[int]:
        out = []
        for b in range(self.rank, self.batch, self.world):
            pos = step * self.batch + b
            block = int(self._permutation(pos // self.n)[pos % self.n])
            out += range(block * self.group, (block + 1) * self.group)
        return out


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist

            backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
            if not dist.is_initialized():
                dist.init_process_group(backend)
            if backend == "nccl":
                torch.cuda.set_device(self.local_rank)
                self.device = torch.device("cuda", self.local_rank)
                return
        self.device = resolve_device(device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist(), strict=True)}

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _texts_per_image(data: Any, optim: Any) -> int:
    """``optim.texts_per_image``, checked against the data: every scene must have exactly
    that many consecutive expressions (Shapes-Ref and its caches do)."""
    k = int(optim.texts_per_image)
    if k > 1 and getattr(data, "per_scene", None) != k:
        from ..errors import ConfigError

        raise ConfigError(
            f"optim.texts_per_image {k} needs data with exactly {k} expressions per scene "
            f"(Shapes-Ref has {k if hasattr(data, 'per_scene') else 'a fixed number'}); "
            f"{getattr(data, 'name', type(data).__name__)} does not"
        )
    return k


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write never leaves a truncated last.pt. The temporary
    file carries a name only wsris uses; a killed run's one is removed by the next run
    (:func:`remove_checkpoint_leftovers`), an interrupted one at once."""
    import tempfile

    from ..safe_files import temp_prefix

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".part",
                                    dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write the checkpoint {path}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a quota
            raise OutputError(f"cannot write the checkpoint {path}: "
                              f"{exc.strerror or exc}") from exc
        raise


def remove_checkpoint_leftovers(folder: Path) -> None:
    """Remove the temporary checkpoints of killed runs in ``folder`` (and ``last.tmp``,
    the name earlier versions used)."""
    from ..safe_files import remove_leftovers

    remove_leftovers(folder)
    (folder / "last.tmp").unlink(missing_ok=True)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``last.pt`` as saved by :func:`save_checkpoint`; a truncated, empty or foreign file
    is a :class:`~wsris.errors.WeightsMismatchError` that says how to go on."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise WeightsMismatchError(
            f"{path} is not a readable checkpoint (truncated or not a wsris checkpoint: "
            f"{_one_line(exc)}); remove it or pass --no-resume to start again"
        ) from exc
    missing = {"model", "optimizer", "scheduler", "torch_rng", "step"} - set(
        state if isinstance(state, dict) else ())
    if missing:
        raise WeightsMismatchError(
            f"{path} is not a wsris training checkpoint (no {', '.join(sorted(missing))}); "
            "remove it or pass --no-resume to start again"
        )
    return state


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _batches(
    stages: list[tuple[int | None, Any, StepSampler]], collate, start: int
) -> Iterator[tuple[int, Any]]:
    """Batches from the curriculum stage each step falls in (``until`` exclusive)."""
    step = start
    while True:
        _, dataset, sampler = next(s for s in stages if s[0] is None or step < s[0])
        yield step, collate([dataset[i] for i in sampler.indices(step)], dataset)
        step += 1


def autocast_settings(config: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    """Whether the forward pass runs under autocast, and in which dtype: on CUDA with
    ``amp`` (bf16 where the GPU has it, else fp16 with a gradient scaler); on the CPU with
    ``cpu_amp``, in bf16. Measured on this project's AVX512-BF16 CPU at batch 32, one
    thread: the chunk stage-2 step 0.279 -> 0.257 s (the fusion forward gains, the backward
    does not), stage 1 no gain; so it is off by default and in the shipped recipes."""
    if device.type == "cuda" and config.amp:
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and config.cpu_amp:
        return True, torch.bfloat16
    return False, torch.float32


def train(config: TrainConfig, resume: bool = True, progress: bool = True) -> Path:
    """Train ``config``; return the folder of the exported model (``OUTPUT/model``), or
    the checkpoint file when the time limit stopped training first."""
    from ..progress import tqdm
    from .objectives import build_objective

    if config.optim.num_workers:
        import warnings

        warnings.warn(
            f"optim.num_workers = {config.optim.num_workers} is not used: batches are read "
            "and collated in the training process", stacklevel=2)
    dist = Distributed(config.device)
    seed_everything(config.seed + dist.rank)
    out = Path(config.output_dir)
    if dist.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "recipe.json").write_text(json.dumps(config.to_dict(), indent=2,
                                                        default=str))
        except OSError as exc:
            raise OutputError(f"cannot write the training run to {out}: "
                              f"{exc.strerror or exc}") from exc
    objective = build_objective(config, dist.device)
    model = objective.model
    module = dist.wrap(objective)
    optim = config.optim
    optimizer = build_optimizer(model, optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(optim.warmup_steps, optim.total_steps)
    )
    use_amp, amp_dtype = autocast_settings(config, dist.device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start, elapsed_before = 0, 0.0
    ckpt_path = out / "checkpoints" / CHECKPOINT
    if dist.main:
        remove_checkpoint_leftovers(ckpt_path.parent)
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, dist.device)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise WeightsMismatchError(
                f"{ckpt_path} was saved by another model or recipe ({_one_line(exc)}); "
                "remove it, pass --no-resume, or use another --output-dir"
            ) from exc
        for group in optimizer.param_groups:  # a checkpoint from before fused AdamW
            group["fused"] = optimizer.defaults["fused"]
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        start, elapsed_before = int(state["step"]), float(state.get("elapsed", 0.0))

    stages = [
        (until, data, StepSampler(len(data), optim.batch_size, config.seed + k, dist.rank,
                                  dist.world, group=_texts_per_image(data, optim)))
        for k, (until, data) in enumerate(objective.train_stages())
    ]
    log_path = out / "train_log.jsonl"
    t0 = time.monotonic()
    sched = config.schedule

    def checkpoint(step: int) -> None:
        if dist.main:
            save_checkpoint(
                ckpt_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "elapsed": elapsed_before + time.monotonic() - t0,
                },
            )

    bar = tqdm(
        total=optim.total_steps, initial=start, disable=not (progress and dist.main),
        desc=f"train {config.method}", dynamic_ncols=True,
    )
    step = start
    model.train()
    for step, batch in _batches(stages, objective.collate, start):
        if step >= optim.total_steps:
            break
        objective.set_step(step)
        with torch.autocast(dist.device.type, dtype=amp_dtype, enabled=use_amp):
            losses = module(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        scaler.unscale_(optimizer)
        # grad_clip 0 is off: the norm is still measured (and logged)
        max_norm = optim.grad_clip if optim.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        done = step + 1
        if done % sched.log_every == 0 or done == optim.total_steps:
            values = dist.mean({k: float(v.detach()) for k, v in losses.items()})
            values["grad_norm"] = float(grad_norm)
            values["lr"] = scheduler.get_last_lr()[0]
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k != "lr"})
            if dist.main:
                record = {"step": done, "time": elapsed_before + time.monotonic() - t0, **values}
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
        bar.update(1)
        if sched.eval_every and done % sched.eval_every == 0 and dist.main:
            seconds = elapsed_before + time.monotonic() - t0
            _validate(objective, done, sched.eval_limit, out, seconds)
            model.train()
        keep = bool(sched.keep_every) and done % sched.keep_every == 0
        if keep or done % sched.checkpoint_every == 0:
            checkpoint(done)  # written once even when both schedules fall on this step
        if keep and dist.main:
            shutil.copyfile(ckpt_path, ckpt_path.with_name(f"step{done}.pt"))
        minutes = (time.monotonic() - t0) / 60
        if sched.time_limit_minutes and minutes >= sched.time_limit_minutes:
            checkpoint(done)  # the same command resumes from here
            bar.close()
            dist.close()
            return ckpt_path
    bar.close()
    final = max(step, start)
    checkpoint(final)
    if dist.main:
        if not (sched.eval_every and final % sched.eval_every == 0):  # not validated just now
            seconds = elapsed_before + time.monotonic() - t0
            _validate(objective, final, sched.eval_limit, out, seconds)
        objective.export(out / "model", total_seconds=elapsed_before + time.monotonic() - t0,
                         step=final)
    dist.barrier()
    dist.close()
    return out / "model"


def _objective_at_checkpoint(config: TrainConfig, step: int | None = None):
    """The run's objective with the model of its last checkpoint (or of the kept
    ``checkpoints/step{step}.pt``), and that checkpoint."""
    from ..errors import WeightsNotAvailableError
    from .objectives import build_objective

    name = CHECKPOINT if step is None else f"step{step}.pt"
    ckpt_path = Path(config.output_dir) / "checkpoints" / name
    if not ckpt_path.is_file():
        raise WeightsNotAvailableError(f"no checkpoint at {ckpt_path}: train first")
    objective = build_objective(config, resolve_device(config.device))
    state = torch.load(ckpt_path, map_location=objective.device, weights_only=True)
    objective.model.load_state_dict(state["model"])
    return objective, state


def export_checkpoint(
    config: TrainConfig, folder: Path | None = None, step: int | None = None
) -> Path:
    """Export the model of a run's last checkpoint (``OUTPUT/checkpoints/last.pt``), or of
    the checkpoint kept at ``step`` (``schedule.keep_every``), as a model folder, e.g. from
    a run stopped by its time limit. Returns the folder (default ``OUTPUT/model-step{N}``)."""
    objective, state = _objective_at_checkpoint(config, step)
    step = int(state["step"])
    folder = Path(config.output_dir) / f"model-step{step}" if folder is None else Path(folder)
    # the card names what the run trained with (its overrides of batch, lr, steps
    # included), not the recipe file this export was called with
    recorded = Path(config.output_dir) / "recipe.json"
    recipe = json.loads(recorded.read_text()) if recorded.is_file() else None
    return objective.export(folder, total_seconds=float(state.get("elapsed", 0.0)), step=step,
                            recipe=recipe)


def validate_checkpoint(config: TrainConfig, limit: int | None = None) -> dict[str, float]:
    """The recipe's validation (learning first, then localisation) on the last
    checkpoint, over ``limit`` val samples (default: the recipe's ``eval_limit``)."""
    objective, state = _objective_at_checkpoint(config)
    metrics = objective.validate(config.schedule.eval_limit if limit is None else limit)
    return {"step": int(state["step"]), **metrics}


def _validate(objective, step: int, limit: int, out: Path, seconds: float) -> None:
    if limit <= 0:  # validation switched off in the recipe
        return
    metrics = objective.validate(limit)
    if not metrics:
        return
    record = {"step": step, "time": seconds, **metrics}
    with open(out / "val_log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    from ..progress import write

    write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
