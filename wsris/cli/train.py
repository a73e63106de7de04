"""``wsris train CONFIG.yaml``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--output-dir", type=click.Path(path_type=Path), default=None,
              help="Override the recipe's output_dir.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Override optim.total_steps (at least 1).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Override optim.batch_size (e.g. a larger batch on a GPU).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override optim.lr.")
@click.option("--time-limit", type=click.FloatRange(min=0), default=None,
              help="Stop cleanly with a checkpoint after this many minutes (resume later; "
                   "0: none).")
@click.option("--device", default=None, help="auto, cpu, cuda (default: the recipe's).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from OUTPUT/checkpoints/last.pt when it exists.")
@click.option("--export-only", is_flag=True,
              help="Do not train: export the last checkpoint's model to OUTPUT/model-stepN.")
@click.option("--checkpoint-step", type=click.IntRange(min=0), default=None,
              help="With --export-only: export the checkpoint kept at this step "
              "(checkpoints/stepN.pt, see schedule.keep_every) instead of the last.")
@click.option("--validate-only", is_flag=True,
              help="Do not train: run the recipe's validation on the last checkpoint and "
              "print it as JSON (--limit samples).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="With --validate-only: val samples (default: schedule.eval_limit).")
def train_command(
    recipe: Path,
    output_dir: Path | None,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    time_limit: float | None,
    device: str | None,
    resume: bool,
    export_only: bool,
    checkpoint_step: int | None,
    validate_only: bool,
    limit: int | None,
) -> None:
    """Train a model from a recipe (configs/*.yaml); both methods share this loop.

    \b
    Multi-process / multi-GPU:
      torchrun --nproc_per_node 2 -m wsris.cli train configs/sag_shapes.yaml
    """
    import json

    from ..training import TrainConfig, export_checkpoint, train, validate_checkpoint

    config = TrainConfig.from_yaml(recipe)
    if output_dir is not None:
        config.output_dir = str(output_dir)
    if steps is not None:
        config.optim.total_steps = steps
    if batch_size is not None:
        config.optim.batch_size = batch_size
    if lr is not None:
        config.optim.lr = lr
    if time_limit is not None:
        config.schedule.time_limit_minutes = time_limit
    if device is not None:
        config.device = device
    config.validate(str(recipe))  # the overrides too, before anything runs
    if validate_only:
        click.echo(json.dumps(validate_checkpoint(config, limit), indent=1))
        return
    if checkpoint_step is not None and not export_only:
        raise click.UsageError("--checkpoint-step needs --export-only")
    if export_only:
        click.echo(f"exported {export_checkpoint(config, step=checkpoint_step)}")
        return
    result = train(config, resume=resume)
    if result.suffix == ".pt":
        click.echo(f"time limit reached; checkpoint {result}; run the same command to resume")
    else:
        click.echo(f"done: model in {result}")
