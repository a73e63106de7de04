"""``wsris convert tris FILE OUT_DIR``: a released TRIS ``.pth`` -> wsris model folder."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("tris")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--image-size", type=click.IntRange(min=32), default=320, show_default=True,
              help="Input size (TRIS validates at --size 320).")
@click.option("--overwrite", is_flag=True, help="Replace an existing model.safetensors.")
def tris_command(src: Path, out_dir: Path, image_size: int, overwrite: bool) -> None:
    """Convert TRIS's SRC (stage1_*.pth or stage2_*.pth, stage detected) into OUT_DIR."""
    from .convert import convert_tris

    folder = convert_tris(src, out_dir, image_size=image_size, overwrite=overwrite)
    source = json.loads((folder / "config.json").read_text(encoding="utf-8"))["source"]
    dropped = ", ".join(f"{n} {g}" for g, n in source["dropped"].items()) or "none"
    click.echo(f"stage {source['stage']}; sha256 of {source['file']}: {source['sha256']} "
               "(TRIS publishes no checksum to compare it with)")
    click.echo(f"dropped keys: {dropped}")
    click.echo(f"wrote {folder / 'config.json'} and {folder / 'model.safetensors'}")
    from ...weights.model_ref import usage_lines

    for line in usage_lines(folder):
        click.echo(line)
