"""``wsris models`` and ``wsris download``."""

from __future__ import annotations

import json

import click

WIDTH = 100  # the table and its notes fit a terminal this wide

#: What each status means, one short line each (the table's legend).
STATUS_MEANING = {
    "bundled": "ships inside the package; works offline",
    "cached": "downloaded before; in the local Hugging Face cache",
    "downloadable": "fetched (and converted) on first use; needs the network once",
    "unpublished": "no weights exist anywhere: train it with a recipe in configs/",
}


def _size(spec) -> str:
    for source in spec.sources:
        for f in source.files:
            if f.name == "model.safetensors" and f.size is not None:
                return f"{f.size / 1e6:.1f} MB"
    return "-"


def known_vocabulary(spec) -> dict[str, list[str]] | None:
    """The words a model trained on Shapes-Ref knows (the generator's colours, shapes,
    sizes, relations and locations); None for models trained on natural language."""
    if not spec.training_data.startswith("Shapes-Ref"):
        return None
    from ..data.shapes_grammar import LOCATIONS, RELATIONS, SIZES, ShapesConfig

    config = ShapesConfig()
    return {"colours": list(config.colours), "shapes": list(config.shapes),
            "sizes": list(SIZES), "relations": list(RELATIONS), "locations": list(LOCATIONS)}


def _rows() -> tuple[list[dict], str, str]:
    from ..registry import get_method
    from ..weights.manifest import default_model, load_manifest
    from ..weights.sources import cached_status

    manifest = load_manifest()
    default, why = default_model(manifest)
    rows = []
    for name, spec in sorted(manifest.items()):
        state = cached_status(spec)
        status = state + (" (random weights)" if spec.random_init else "")
        miou = spec.metrics.get("mIoU")
        method = get_method(spec.method)
        rows.append({
            "name": name, "method": spec.method,
            "status": status + (" (default)" if name == default else ""),
            "state": state, "default": name == default, "random_weights": spec.random_init,
            "size": _size(spec),
            "mIoU": None if miou is None else round(100 * miou, 2),
            "mIoU_data": spec.metrics.get("data") if miou is not None else None,
            "threshold": spec.threshold, "threshold_meaning": method.threshold_meaning,
            "training_data": spec.training_data, "vocabulary": known_vocabulary(spec),
        })
    return rows, default, why


def _wrap(text: str, first: str = "", rest: str = "  ") -> list[str]:
    import textwrap

    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False)


def _table(rows: list[dict], default: str, why: str) -> list[str]:
    cells = [
        {"NAME": r["name"] + (" *" if r["default"] else ""), "METHOD": r["method"],
         "STATUS": r["state"] + (", random weights" if r["random_weights"] else ""),
         "SIZE": r["size"], "mIoU": "-" if r["mIoU"] is None else f"{r['mIoU']:.1f}"}
        for r in rows
    ]
    widths = {k: max(len(k), *(len(c[k]) for c in cells)) for k in cells[0]}
    lines = ["  ".join(k.ljust(widths[k]) for k in widths).rstrip()]
    lines += ["  ".join(c[k].ljust(widths[k]) for k in widths).rstrip() for c in cells]
    lines.append("")
    lines += _wrap(f"* default (`wsris segment` without --model): {why}")
    measured_on = sorted({r["mIoU_data"] for r in rows if r["mIoU_data"]})
    if measured_on:
        lines += _wrap(f"mIoU: % measured on {'; '.join(measured_on)}")
    for state, meaning in STATUS_MEANING.items():
        if any(r["state"] == state for r in rows):
            lines.append(f"{state}: {meaning}")
    lines.append("training data, vocabulary, thresholds: wsris models --wide (or --json)")
    return lines


def _wide(rows: list[dict], why: str) -> list[str]:
    def field(label: str, text: str) -> list[str]:
        return _wrap(f"{label}: {text}", "  ", "    ")

    lines = []
    for r in rows:
        lines.append(r["name"] + (" (default)" if r["default"] else ""))
        lines += field("method", r["method"])
        lines += field("status", f"{r['state']}: {STATUS_MEANING.get(r['state'], '')}"
                       + (" (RANDOM weights: its masks are meaningless)"
                          if r["random_weights"] else ""))
        if r["default"]:
            lines += field("default because", why)
        lines += field("weights", r["size"])
        lines += field("measured mIoU", "-" if r["mIoU"] is None
                       else f"{r['mIoU']:.2f} ({r['mIoU_data']})")
        lines += field("threshold", f"{r['threshold']:g}; {r['threshold_meaning']}")
        lines += field("training data", r["training_data"] or "-")
        vocab = r["vocabulary"]
        if vocab is None:
            lines += field("knows", "free English referring expressions (its training "
                                    "data's vocabulary)")
        else:
            lines += field("knows", "only the Shapes-Ref world: "
                           + "; ".join(f"{k} {', '.join(v)}" for k, v in vocab.items()))
        lines.append("")
    return lines[:-1]


@click.command("models")
@click.option("--wide", is_flag=True,
              help="Everything about each model: training data, threshold, vocabulary.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def models_command(wide: bool, as_json: bool) -> None:
    """List the models in the manifest: status, weights size, measured mIoU; the
    default is marked with *.

    \b
    Status: bundled (ships in the package), cached (in the local cache),
    downloadable (needs a download), unpublished (no weights exist: train it).
    """
    rows, default, why = _rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for line in _wide(rows, why) if wide else _table(rows, default, why):
        click.echo(line)


@click.command("download")
@click.argument("name")
@click.option("--revision", default=None, help="Hub revision instead of the pinned one.")
@click.option("--cache-dir", default=None, help="Hugging Face cache folder.")
def download_command(name: str, revision: str | None, cache_dir: str | None) -> None:
    """Fetch NAME's weights into the local cache (for later offline use)."""
    from ..weights.manifest import get_spec
    from ..weights.sources import fetch

    # local_files_only=None: HF_HUB_OFFLINE, when set, holds for every source
    folder = fetch(get_spec(name), revision=revision, cache_dir=cache_dir, local_files_only=None)
    click.echo(f"{name}: {folder}")
