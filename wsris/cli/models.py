"""``wsris models`` and ``wsris download``."""

from __future__ import annotations

import json

import click


def _size(spec) -> str:
    for source in spec.sources:
        for f in source.files:
            if f.name == "model.safetensors" and f.size is not None:
                return f"{f.size / 1e6:.1f} MB"
    return "-"


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def models_command(as_json: bool) -> None:
    """List the models in the manifest with their status.

    \b
    Status: bundled (ships in the package), cached (in the local cache),
    downloadable (needs a download), unpublished (no weights exist: train it).
    """
    from ..hub import cached_status
    from ..registry import default_model, load_manifest

    manifest = load_manifest()
    default, why = default_model(manifest)
    rows = []
    for name, spec in sorted(manifest.items()):
        status = cached_status(spec)
        if spec.random_init:
            status += " (random weights)"
        if name == default:
            status += " (default)"
        rows.append(
            {"name": name, "method": spec.method, "status": status, "size": _size(spec),
             "training_data": spec.training_data}
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    click.echo("  ".join(k.upper().ljust(widths[k]) for k in widths))
    for r in rows:
        click.echo("  ".join(str(r[k]).ljust(widths[k]) for k in widths))
    click.echo(f"\ndefault model: {default}: {why}")


@click.command("download")
@click.argument("name")
@click.option("--revision", default=None, help="Hub revision instead of the pinned one.")
@click.option("--cache-dir", default=None, help="Hugging Face cache folder.")
def download_command(name: str, revision: str | None, cache_dir: str | None) -> None:
    """Fetch NAME's weights into the local cache (for later offline use)."""
    from ..hub import fetch
    from ..registry import get_spec

    # local_files_only=None: HF_HUB_OFFLINE, when set, holds for every source
    folder = fetch(get_spec(name), revision=revision, cache_dir=cache_dir, local_files_only=None)
    click.echo(f"{name}: {folder}")
