"""``wsris export``: a training run or model folder -> a Hub-ready folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--license", "license_name", default=None,
              help="License id as the Hub spells it (default: apache-2.0).")
@click.option("--dataset", "datasets", multiple=True,
              help="Training dataset id for the card (repeatable; default: from the run).")
@click.option("--tag", "tags", multiple=True, help="Extra card tag (repeatable).")
@click.option("--repo-id", default=None,
              help="USER/REPO the folder will be uploaded to (used in the card's example).")
@click.option("--weights-dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True, help="Precision of model.safetensors.")
@click.option("--overwrite", is_flag=True,
              help="Replace OUT_DIR when it holds an earlier export (only its config.json, "
                   "model.safetensors and README.md).")
def export_command(
    source: Path,
    out_dir: Path,
    license_name: str | None,
    datasets: tuple[str, ...],
    tags: tuple[str, ...],
    repo_id: str | None,
    weights_dtype: str,
    overwrite: bool,
) -> None:
    """Write config.json, model.safetensors and a Hub model card for SOURCE to OUT_DIR
    (a new or empty folder; an earlier export only with --overwrite).

    \b
    SOURCE is a training run (`wsris train --output-dir RUN`) or a model folder.
    Publish:  hf upload USER/REPO OUT_DIR
    Load:     wsris.load("hf-hub:USER/REPO")
    """
    from ..export import export_model

    folder = export_model(
        source, out_dir, license_name=license_name, datasets=list(datasets) or None,
        tags=list(tags), repo_id=repo_id, weights_dtype=weights_dtype, overwrite=overwrite,
    )
    click.echo(f"exported {folder} (config.json, model.safetensors, README.md)")
