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
    from ..data.export import export_shapes
    from ..data.shapes import variant_config
    from ..progress import tqdm

    cfg = variant_config(variant)
    total = sum(n if n is not None else cfg.split_size(s) for s in splits)
    from ..errors import OutputError

    with tqdm(total=total, unit="scene", disable=not progress) as bar:
        try:
            summary = export_shapes(directory, list(splits), n, seed=seed, variant=variant,
                                    config=cfg, name=name, overwrite=overwrite,
                                    progress=bar.update)
        except OSError as exc:  # a read-only, full or impossible DIRECTORY
            where = f" ({exc.filename})" if exc.filename else ""
            raise OutputError(f"cannot write the export to {directory}{where}: "
                              f"{exc.strerror or exc}") from exc
    click.echo(f"wrote {summary['images']} images, {summary['refs']} refs, "
               f"{summary['sentences']} sentences to {directory}")
    click.echo(f"evaluate with: wsris eval --data {name}:unc:{splits[0]}@{directory}")


@data_group.command("cache")
@click.argument("spec", metavar="shapes:SPLIT")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Scenes to render (scenes 0..n-1 of the split).")
@click.option("--variant", default="default", show_default=True,
              help="default, plus (RefCOCO+-like), attributes, relations, easy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Generator seed.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes rendering in parallel (the result does not depend on it).")
@click.option("--overwrite", is_flag=True, help="Replace an existing cache.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def cache_command(spec: str, directory: Path, n: int, variant: str, seed: int, workers: int,
                  overwrite: bool, progress: bool) -> None:
    """Pre-render Shapes-Ref scenes into DIRECTORY (memory-mapped arrays), read by
    training as the data spec cache:DIRECTORY. Same scenes as the generator.

    \b
    Example:
      wsris data cache shapes:train ~/caches/train-attr --n 20000 --variant attributes
      (recipe)  data: {train: "cache:~/caches/train-attr"}
    """
    from ..data.shapes import SPLITS
    from ..data.shapes_cache import write_shapes_cache
    from ..errors import InvalidInputError
    from ..progress import tqdm

    kind, _, split = spec.partition(":")
    if kind != "shapes" or split not in SPLITS:
        raise InvalidInputError(f"bad cache spec {spec!r}: expected shapes:SPLIT with SPLIT one "
                                f"of {', '.join(SPLITS)}")
    with tqdm(total=n, unit="scene", disable=not progress) as bar:
        write_shapes_cache(directory, split, n, variant=variant, seed=seed, workers=workers,
                           overwrite=overwrite, progress=bar.update)
    click.echo(f"wrote {n} scenes of shapes:{split} (variant {variant}, seed {seed}) to "
               f"{directory}; train on it with the data spec cache:{directory}")
