"""``wsris data``: generate and export datasets."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("data")
def data_group() -> None:
    """Generate and export datasets (Shapes-Ref)."""


@data_group.command("export-shapes")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", "splits", multiple=True, default=("val",), show_default=True,
              type=click.Choice(["train", "val", "test", "compositional"]),
              help="Split to export; repeat for several (they share one refs file).")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Scenes per split (default: the split's full size; val/test/"
                   "compositional have 1000).")
@click.option("--variant", default="default", show_default=True,
              help="default, plus (RefCOCO+-like), attributes, relations, easy.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Generator seed (the benchmark is seed 0).")
@click.option("--name", default="shapes", show_default=True,
              help="Dataset folder name under DIRECTORY.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def export_shapes_command(directory: Path, splits: tuple[str, ...], n: int | None,
                          variant: str, seed: int, name: str, overwrite: bool,
                          progress: bool) -> None:
    """Write Shapes-Ref splits to DIRECTORY in the REFER format (images, refs(unc).p,
    instances.json), readable with --data NAME:unc:SPLIT@DIRECTORY.

    \b
    Example:
      wsris data export-shapes out/ --split val --split test --n 200
      wsris eval --data shapes:unc:val@out/
    """
    from tqdm.auto import tqdm

    from ..data.export import export_shapes
    from ..data.shapes import variant_config

    cfg = variant_config(variant)
    total = sum(n if n is not None else cfg.split_size(s) for s in splits)
    with tqdm(total=total, unit="scene", disable=not progress) as bar:
        summary = export_shapes(directory, list(splits), n, seed=seed, variant=variant,
                                config=cfg, name=name, overwrite=overwrite,
                                progress=bar.update)
    click.echo(f"wrote {summary['images']} images, {summary['refs']} refs, "
               f"{summary['sentences']} sentences to {directory}")
    click.echo(f"evaluate with: wsris eval --data {name}:unc:{splits[0]}@{directory}")
