"""``wsris segment``: one image (or a folder or glob of images), one or more expressions."""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import click

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_GLOB_CHARS = "*?["


def expand_images(arg: Path) -> list[Path] | None:
    """The images of a folder or a glob pattern, sorted; None for a single image path."""
    from ..errors import ImageError

    text = str(arg)
    if arg.is_dir():
        found = [p for p in arg.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        where = f"folder {arg}"
    elif not arg.exists() and any(c in text for c in _GLOB_CHARS):
        found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        where = f"pattern {text!r}"
    else:
        return None
    if not found:
        raise ImageError(f"no images in {where} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return sorted(found)


def _names(images: list[Path]) -> list[str]:
    """Output names: the file stem, or the whole file name where two stems collide."""
    stems = [p.stem for p in images]
    return [p.stem if stems.count(p.stem) == 1 else p.name for p in images]


def _numbered(path: Path | None, index: int, count: int) -> Path | None:
    """``out.png`` for one text; ``out_0.png``, ``out_1.png``, ... for several."""
    if path is None or count == 1:
        return path
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


@click.command("segment")
@click.argument("image", type=click.Path(path_type=Path), metavar="IMAGE|FOLDER|GLOB")
@click.argument("texts", nargs=-1, required=True)
@click.option("--model", "-m", default="albef-chunk-shapes", show_default=True,
              help="Model name from `wsris models`, a local folder, or hf-hub:org/repo@rev.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Mask PNG (255 inside) [default: mask.png]. Several texts: out_0.png, ... "
              "Many images: a folder [default: masks], one IMAGE_STEM.png each.")
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
    model: str,
    out: Path,
    overlay: Path | None,
    heatmap: Path | None,
    threshold: float | None,
    device: str,
    dtype: str,
    as_json: bool,
) -> None:
    """Segment what each TEXT refers to in IMAGE and write the mask(s).

    IMAGE may be a folder or a quoted glob ("photos/*.jpg"): the model is loaded once
    and every image segmented with every TEXT; --out, --overlay and --heatmap are then
    folders, with one IMAGE_STEM.png (IMAGE_STEM_0.png, ... for several texts) each.

    \b
    Example:
      wsris segment photo.jpg "man in blue shirt" --overlay overlay.png
      wsris segment "photos/*.jpg" "the dog" --out masks/
    """
    import wsris

    from ..errors import WsrisError

    images = expand_images(image)
    segmenter = wsris.load(model, device=device, dtype=dtype)
    if segmenter.spec is not None and segmenter.spec.random_init:
        click.echo(
            f"wsris: warning: {segmenter.name} has RANDOMLY INITIALISED weights; its masks "
            "are meaningless (see `wsris models`)",
            err=True,
        )
    if images is None:
        _segment_one(segmenter, image, texts, out or Path("mask.png"), overlay, heatmap,
                     threshold, as_json)
        return
    # Many images: start-up paid once; an image that fails is reported and skipped.
    folders = [out or Path("masks"), overlay, heatmap]
    failed: WsrisError | None = None
    for path, name in zip(images, _names(images), strict=True):
        o, ov, hm = (None if f is None else f / f"{name}.png" for f in folders)
        try:
            _segment_one(segmenter, path, texts, o, ov, hm, threshold, as_json)
        except WsrisError as exc:
            click.echo(f"wsris: error: {path}: {exc}", err=True)
            failed = failed or exc
    if failed is not None:
        sys.exit(failed.exit_code)


def _segment_one(
    segmenter,
    image: Path,
    texts: tuple[str, ...],
    out: Path,
    overlay: Path | None,
    heatmap: Path | None,
    threshold: float | None,
    as_json: bool,
) -> None:
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
                f"{result.text!r}: mask {mask_path} ({result.area} px, "
                f"bbox xywh {result.bbox})"
            )
    if as_json:
        click.echo(json.dumps({"model": segmenter.name, "image": str(image), "results": report}))
