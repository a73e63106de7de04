"""``wsris convert ...``: turn foreign checkpoints into wsris model folders."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click


def usage_lines(folder: Path) -> list[str]:
    """How to use a converted folder, in forms that work when pasted: a name without a
    slash gets ``./`` so it can never be taken for a manifest name."""
    ref = str(folder)
    if "/" not in ref and "\\" not in ref:
        ref = f"./{ref}"
    return [f"use it with: wsris.load({ref!r})",
            f"         or: wsris segment IMAGE TEXT --model {shlex.quote(ref)}"]


@click.group("convert")
def convert_group() -> None:
    """Convert a published checkpoint into a folder that ``wsris.load`` reads."""


@convert_group.command("albef")
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
    from ..convert.albef import convert_albef

    folder = convert_albef(src, out_dir, variant=variant, overwrite=overwrite)  # type: ignore[arg-type]
    source = json.loads((folder / "config.json").read_text(encoding="utf-8"))["source"]
    dropped = ", ".join(f"{n} {g}" for g, n in source["dropped"].items()) or "none"
    click.echo(f"variant: {source['variant']}; sha256 of {source['file']}: {source['sha256']}")
    click.echo(f"dropped keys: {dropped}")
    if source["position_grid_resized"]:
        a, b = source["position_grid_resized"]
        click.echo(f"position grid resized bicubically from {a}x{a} to {b}x{b}")
    click.echo(f"wrote {folder / 'config.json'} and {folder / 'model.safetensors'}")
    for line in usage_lines(folder):
        click.echo(line)


def _attach_sag() -> None:
    from .convert_sag import sag_command

    convert_group.add_command(sag_command)


_attach_sag()
