"""``wsris convert sag MODEL_BEST OUT_DIR``: official SaG checkpoint -> wsris model folder."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("sag")
@click.argument("model_best", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--num-slots",
    type=click.IntRange(min=1),
    default=None,
    help="Total slots K (--img_num_embeds), for a checkpoint without args [assumed: 36].",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=16),
    default=None,
    help="Input size (--crop_size), for a checkpoint without args [assumed: 384]; the ViT "
    "position grid is resized to it.",
)
@click.option(
    "--slots-per-group",
    type=click.IntRange(min=1),
    default=None,
    help="--cascade_factor of query/random-slot checkpoints without args (entity: K / Kg).",
)
@click.option(
    "--random-slots",
    is_flag=True,
    help="A checkpoint without args was trained with random slots.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing model.safetensors.")
def sag_command(
    model_best: Path,
    out_dir: Path,
    num_slots: int,
    image_size: int,
    slots_per_group: int | None,
    random_slots: bool,
    overwrite: bool,
) -> None:
    """Convert an official Shatter and Gather ``model_best.pth.tar`` into OUT_DIR.

    What no tensor shape stores is read from the checkpoint's args; the options give it
    for a checkpoint without args, and a value that contradicts the args is an error.
    Writes config.json, model.safetensors and README.md; load the result with
    ``wsris.load("OUT_DIR")`` or ``wsris segment --model OUT_DIR ...``.
    """
    from .convert import convert_sag

    out = convert_sag(
        model_best,
        out_dir,
        num_slots=num_slots,
        image_size=image_size,
        slots_per_group=slots_per_group,
        random_slots=random_slots,
        overwrite=overwrite,
    )
    source = json.loads((out / "config.json").read_text(encoding="utf-8"))["source"]
    arch = json.loads((out / "config.json").read_text(encoding="utf-8"))["architecture"]
    click.echo(f"sha256 of {source['file']}: {source['sha256']}")
    click.echo(
        f"slots: {arch['slot_type']}, {arch['num_groups']} x {arch['slots_per_group']}, "
        f"{arch['iterations']} iterations; input {arch['image_size']} px"
    )
    read = [f"{k} ({v})" for k, v in source["settings"].items() if not v.startswith("assumed")]
    click.echo(f"settings read or given: {', '.join(read) or 'none'}")
    if source["assumed"]:
        click.echo(
            "assumed (not in the checkpoint's args; pass the option if they differ): "
            + ", ".join(source["assumed"])
        )
    click.echo(f"dropped keys: {', '.join(source['dropped_keys']) or 'none'}")
    click.echo(f"wrote {out / 'config.json'}, {out / 'model.safetensors'} and {out / 'README.md'}")
    from ...weights.model_ref import usage_lines  # light enough, but not needed for --help

    for line in usage_lines(out):
        click.echo(line)
