"""``wsris segment``: one image, one or more expressions."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _numbered(path: Path | None, index: int, count: int) -> Path | None:
    """``out.png`` for one text; ``out_0.png``, ``out_1.png``, ... for several."""
    if path is None or count == 1:
        return path
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


@click.command("segment")
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1, required=True)
@click.option("--model", "-m", default=None,
              help="Model name from `wsris models`, a local folder, or hf-hub:org/repo@rev "
              "(default: the bundled model that scores best on shapes:val; `wsris models` "
              "names it).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("mask.png"),
              show_default=True, help="Mask PNG (255 inside). Several texts: out_0.png, ...")
@click.option("--overlay", type=click.Path(path_type=Path), default=None,
              help="Also write the image with the mask drawn on it.")
@click.option("--heatmap", type=click.Path(path_type=Path), default=None,
              help="Also write the [0, 1] localisation map as a colour PNG.")
@click.option("--threshold", "-t", type=click.FloatRange(0.0, 1.0), default=None,
              help="Threshold on the heat map (default: the model's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
              default="float32", show_default=True, help="bfloat16/float16 need CUDA.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per run: mask path, area, bbox, score per text.")
def segment_command(
    image: Path,
    texts: tuple[str, ...],
    model: str | None,
    out: Path,
    overlay: Path | None,
    heatmap: Path | None,
    threshold: float | None,
    device: str,
    dtype: str,
    as_json: bool,
) -> None:
    """Segment what each TEXT refers to in IMAGE and write the mask(s).

    \b
    Example:
      wsris segment photo.jpg "man in blue shirt" --overlay overlay.png
    """
    import wsris

    if model is None:
        from ..registry import default_model

        model = default_model()[0]
    segmenter = wsris.load(model, device=device, dtype=dtype)
    if segmenter.spec is not None and segmenter.spec.random_init:
        click.echo(
            f"wsris: warning: {segmenter.name} has RANDOMLY INITIALISED weights; its masks "
            "are meaningless (see `wsris models`)",
            err=True,
        )
    results = segmenter.segment(image, list(texts), threshold=threshold)
    report = []
    for i, result in enumerate(results):
        mask_path = result.save(_numbered(out, i, len(results)))
        entry = {**result.to_dict(), "mask_path": str(mask_path)}
        if overlay is not None:
            path = _numbered(overlay, i, len(results))
            path.parent.mkdir(parents=True, exist_ok=True)
            result.overlay().save(path)
            entry["overlay_path"] = str(path)
        if heatmap is not None:
            path = _numbered(heatmap, i, len(results))
            path.parent.mkdir(parents=True, exist_ok=True)
            result.heatmap_image().save(path)
            entry["heatmap_path"] = str(path)
        report.append(entry)
        if not as_json:
            click.echo(
                f"{result.text!r}: mask {mask_path} ({result.area} px, bbox {result.bbox})"
            )
    if as_json:
        click.echo(json.dumps({"model": segmenter.name, "image": str(image), "results": report}))
