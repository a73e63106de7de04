"""``wsris eval``: the papers' metrics on Shapes-Ref or a REFER-format dataset."""

from __future__ import annotations

from pathlib import Path

import click

from ..registry import get_method, method_names

_VARIANT_HELP = (
    "Method variant (the papers' ablations). "
    + "; ".join(h for h in (get_method(m).variant_help for m in method_names()) if h)
    + ". Default: the model's own setting."
)


def _check_variant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A variant some registered method defines (read when the command runs, so a
    method registered after import counts); the model's own method checks it again."""
    known = sorted({v for m in method_names() for v in get_method(m).variants})
    if value is not None and value not in known:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(map(repr, known))}")
    return value


@click.command("eval")
@click.option("--model", "-m", default=None,
              help="Model name from `wsris models`, a local folder, or hf-hub:org/repo@rev. "
                   "Omit it to evaluate only the trivial baselines.")
@click.option("--data", "-d", default="shapes:val", show_default=True,
              help="shapes:SPLIT (train, val, test, compositional, drawings), "
                   "shapes:VARIANT:SPLIT, shapes+:SPLIT, or DATASET:SPLIT_BY:SPLIT@ROOT for "
                   "a REFER-format dataset, e.g. refcoco+:unc:val@/data/refer, or "
                   "phrasecut:SPLIT@ROOT.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N samples (expressions); N >= 1.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail",
              show_default=True,
              help="A sample that cannot be used (missing image, empty text, ...): fail "
                   "names its dataset, ref id and sentence id and stops; skip leaves it out "
                   "of every figure and lists it in the table and the JSON.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write metrics, settings and per-sample IoUs to this JSON file (checked "
                   "before the evaluation starts; never a dataset file).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also score the trivial baselines (random object's true mask, all "
                   "objects, centred box) on the same samples.")
@click.option("--variant", default=None, callback=_check_variant, help=_VARIANT_HELP)
@click.option("--threshold", "-t", type=click.FloatRange(0.0, 1.0), default=None,
              help="Threshold on the heat map (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the model's randomness and the random-object baseline.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--images", type=click.Path(path_type=Path), default=None,
              help="Image folder of a REFER or PhraseCut dataset (default: found under ROOT).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def eval_command(model: str | None, data: str, limit: int | None, on_error: str,
                 json_path: Path | None, overwrite: bool,
                 baseline: bool, variant: str | None, threshold: float | None, seed: int,
                 device: str, images: Path | None, progress: bool) -> None:
    """Evaluate a model (and the trivial baselines) with mIoU, cIoU, Pr@{0.3,0.5,0.7,0.9},
    precision and recall, at the original image resolution.

    \b
    Examples:
      wsris eval --model albef-chunk-shapes --data shapes:val --json val.json
      wsris eval --model sag-refcoco --variant max --data refcoco:unc:val@/data/refer
      wsris eval --model M --data refcoco+:unc:val@/data/refer --limit 1000
      wsris eval --data shapes:test                  # baselines only
    \b
    On several processes (same figures as one process):
      torchrun --nproc_per_node 2 -m wsris.cli eval --model M --data shapes:val
    """
    from ..evaluation import run

    run(data=data, model=model, limit=limit, json_path=json_path, baselines=baseline,
        variant=variant, seed=seed, device=device, threshold=threshold, images=images,
        progress=progress, echo=click.echo, on_error=on_error,
        overwrite=overwrite)
