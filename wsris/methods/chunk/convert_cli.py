"""``wsris albef`` converter command: official ALBEF ``.pth`` -> wsris model folder."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("albef")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--variant",
    type=click.Choice(["grounding", "pretrain"]),
    default=None,
    help="refcoco.pth is 'grounding', ALBEF.pth / ALBEF_4M.pth are 'pretrain' "
    "(detected when omitted, checked when given).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing model.safetensors.")
def albef_command(src: Path, out_dir: Path, variant: str | None, overwrite: bool) -> None:
    """Convert ALBEF's SRC.pth (refcoco.pth, ALBEF.pth, ALBEF_4M.pth) into OUT_DIR."""
    from .convert import convert_albef

    folder = convert_albef(src, out_dir, variant=variant, overwrite=overwrite)  # type: ignore[arg-type]
    source = json.loads((folder / "config.json").read_text(encoding="utf-8"))["source"]
    dropped = ", ".join(f"{n} {g}" for g, n in source["dropped"].items()) or "none"
    click.echo(f"variant: {source['variant']}; sha256 of {source['file']}: {source['sha256']}")
    click.echo(f"dropped keys: {dropped}")
    if source["position_grid_resized"]:
        a, b = source["position_grid_resized"]
        click.echo(f"position grid resized bicubically from {a}x{a} to {b}x{b}")
    click.echo(f"wrote {folder / 'config.json'} and {folder / 'model.safetensors'}")
    from ...weights.model_ref import usage_lines  # light enough, but not needed for --help

    for line in usage_lines(folder):
        click.echo(line)
