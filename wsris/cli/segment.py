"""``wsris segment``: one image or many (a folder, a glob), one or more expressions.

Everything is checked before the model loads (the image is read, or fetched when it is a
URL; the texts are checked against the model's text settings; every output path is
validated and a temporary file made beside it), so a bad input fails in well under a
second. Outputs appear only when the whole run succeeded (see :mod:`wsris.cli.outputs`).

Many images (a folder or a glob pattern) load the model once; each image's outputs are
named after it in ``--out-dir``. An image that cannot be read stops the run with nothing
written (``--on-error fail``), or is left out and listed (``--on-error skip``).
"""

from __future__ import annotations

import glob
import json
import warnings
from pathlib import Path
from typing import Any

import click

from .outputs import MASK_FORMATS, OutputPlan, numbered

# Echoed texts longer than this are shortened (the JSON keeps them whole).
ECHO_CHARS = 60
DEFAULT_OUT = Path("mask.png")


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def image_inputs(image: str) -> tuple[list[str], bool]:
    """The images ``IMAGE`` names and whether it names several: a file or URL (one), a
    folder (its image files, not recursing, hidden files left out) or a glob pattern
    (``**`` recurses; every matching file). Sorted by name."""
    from PIL import Image

    from ..errors import NoImagesError
    from ..images import is_url

    path = Path(image)
    if is_url(image) or path.is_file() or not (path.is_dir() or _is_pattern(image)):
        return [image], False  # a missing file is reported by the image reader
    if path.is_dir():
        known = set(Image.registered_extensions())
        found = sorted(str(p) for p in path.iterdir() if p.is_file()
                       and not p.name.startswith(".") and p.suffix.lower() in known)
        if not found:
            raise NoImagesError(f"no images in folder {image} (looked for image files such as "
                                ".png and .jpg, not in subfolders)")
        return found, True
    found = sorted(p for p in glob.glob(image, recursive=True) if Path(p).is_file())
    if not found:
        raise NoImagesError(f"no files match {image!r}")
    return found, True


@click.command("segment")
@click.argument("image")
@click.argument("texts", nargs=-1, required=True)
@click.option("--model", "-m", default=None,
              help="Model name from `wsris models`, a local folder, or hf-hub:org/repo@rev "
              "(default: the bundled model that scores best on shapes:val; `wsris models` "
              "names it).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Mask PNG (255 inside); default mask.png. Several texts: out_0.png, "
                   "out_1.png, ...")
@click.option("--out-dir", type=click.Path(path_type=Path), default=None,
              help="Write each image's outputs here, named after it: photo.jpg -> "
                   "photo.png (photo_0.png, ... for several texts). Needed for a folder or "
                   "a glob.")
@click.option("--save-overlay", is_flag=True,
              help="With --out-dir: also write NAME.overlay.png for each image.")
@click.option("--save-heatmap", is_flag=True,
              help="With --out-dir: also write NAME.heatmap.png for each image.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail",
              show_default=True,
              help="An image that cannot be read (many images): fail stops and writes "
                   "nothing; skip leaves it out and lists it.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="A progress bar on stderr when there are several images.")
@click.option("--overlay", type=click.Path(path_type=Path), default=None,
              help="Also write the image with the mask drawn on it.")
@click.option("--heatmap", type=click.Path(path_type=Path), default=None,
              help="Also write the [0, 1] localisation map as a colour PNG.")
@click.option("--format", "fmt", type=click.Choice(sorted(MASK_FORMATS)), default=None,
              help="Write masks in this format whatever the --out suffix (default: PNG, "
                   "and a --out name that is not .png is refused; JPEG is lossy).")
@click.option("--overwrite", is_flag=True,
              help="Replace existing output files (and remove numbered masks left from an "
                   "earlier run with more texts).")
@click.option("--overlay-colour", "overlay_colour", default="auto", show_default=True,
              help="Fill colour of --overlay/--save-overlay: auto (the colour that stands "
                   "out most from the object under the mask), a name such as magenta or "
                   "cyan, #rrggbb, or R,G,B.")
@click.option("--threshold", "-t", type=click.FloatRange(0.0, 1.0), default=None,
              help="Threshold on the [0, 1] heat map: the mask is the map at or above it "
                   "(default: the model's). Refused for models whose mask is a chosen mask "
                   "proposal (the chunk models), where it would change nothing.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
              default="float32", show_default=True, help="bfloat16/float16 need CUDA.")
@click.option("--url-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds an image URL has to send everything (connecting, headers and "
                   "body together; default $WSRIS_URL_TIMEOUT or 20).")
@click.option("--allow-private-urls", is_flag=True,
              help="Fetch image URLs on private, loopback and link-local addresses too "
                   "(refused by default; also $WSRIS_ALLOW_PRIVATE_URLS=1).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per run: mask path, area, bbox, score per text.")
def segment_command(
    image: str,
    texts: tuple[str, ...],
    model: str | None,
    out: Path | None,
    out_dir: Path | None,
    save_overlay: bool,
    save_heatmap: bool,
    on_error: str,
    progress: bool,
    overlay: Path | None,
    heatmap: Path | None,
    fmt: str | None,
    overwrite: bool,
    overlay_colour: str,
    threshold: float | None,
    device: str,
    dtype: str,
    url_timeout: float | None,
    allow_private_urls: bool,
    as_json: bool,
) -> None:
    """Segment what each TEXT refers to in IMAGE and write the mask(s). IMAGE is a file,
    an http(s) URL, a folder (every image in it) or a quoted glob pattern; the model loads
    once for all of them. Nothing is written unless every text (and, with --on-error
    fail, every image) succeeds.

    \b
    Examples:
      wsris segment drawing.png "the large red circle" --overlay overlay.png
      wsris segment drawings/ "the blue square" --out-dir masks/
      wsris segment "shots/**/*.png" "the leftmost star" --out-dir masks/ --on-error skip
      wsris segment photo.jpg "man on the right" --model tris-refcoco  # photos

    The bundled models know drawings of coloured shapes (Shapes-Ref); on a picture
    unlike those they warn that the mask is unreliable.
    """
    from functools import partial

    from ..colours import parse_colour
    from ..images import is_url
    from ..images import load_image as read_image
    from ..text import shorten

    colour = parse_colour(overlay_colour)
    load_image = partial(read_image, url_timeout=url_timeout,
                         allow_private=True if allow_private_urls else None)

    images, many = image_inputs(image)
    if many and out_dir is None:
        raise click.UsageError("several images need --out-dir DIR (their outputs are named "
                               "after them)")
    if out_dir is not None and (out is not None or overlay is not None or heatmap is not None):
        raise click.UsageError("--out-dir names the outputs itself: use --save-overlay / "
                               "--save-heatmap, not --out / --overlay / --heatmap")
    if out_dir is None and (save_overlay or save_heatmap):
        raise click.UsageError("--save-overlay and --save-heatmap need --out-dir")

    # 1. Output paths: cheap, and checked first so a typo costs nothing.
    count = len(texts)
    plan = OutputPlan(overwrite=overwrite,
                      inputs=tuple(Path(i) for i in images if not is_url(i)))
    jobs = []  # (image, masks, overlays, heatmaps)
    for source in images:
        if out_dir is None:
            mask_path, overlay_path, heatmap_path = out or DEFAULT_OUT, overlay, heatmap
        else:
            stem = Path(source.split("?")[0]).stem if is_url(source) else Path(source).stem
            mask_path = out_dir / f"{stem}.{fmt or 'png'}"
            overlay_path = out_dir / f"{stem}.overlay.png" if save_overlay else None
            heatmap_path = out_dir / f"{stem}.heatmap.png" if save_heatmap else None
        masks = [plan.add(numbered(mask_path, i, count), "mask", fmt=fmt, mask=True)
                 for i in range(count)]
        plan.numbered_family(mask_path, count, "mask")
        overlays = heatmaps = None
        if overlay_path is not None:
            overlays = [plan.add(numbered(overlay_path, i, count), "overlay")
                        for i in range(count)]
        if heatmap_path is not None:
            heatmaps = [plan.add(numbered(heatmap_path, i, count), "heatmap")
                        for i in range(count)]
        jobs.append((source, masks, overlays, heatmaps))

    # 2. The image (one), the model reference and the texts, before the model loads.
    first = None if many else load_image(images[0])
    if model is None:
        from ..weights.manifest import default_model

        model = default_model()[0]
    from ..weights.model_ref import peek_config, text_tokenizer

    config = peek_config(model)
    if config is not None and threshold is not None:
        _check_threshold(config, model)
    if config is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real run below gives the warnings once
            text_tokenizer(config).check(list(texts))

    plan.prepare()
    done: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    try:
        from ..api import load

        segmenter = load(model, device=device, dtype=dtype)
        if threshold is not None and config is None:  # a Hub model, config only now
            _check_threshold(segmenter.config, model)
        if segmenter.spec is not None and segmenter.spec.random_init:
            click.echo(
                f"wsris: warning: {segmenter.name} has RANDOMLY INITIALISED weights; its "
                "masks are meaningless (see `wsris models`)",
                err=True,
            )
        from ..progress import tqdm

        for source, masks, overlays, heatmaps in tqdm(
                jobs, desc="segment", unit="image", disable=not progress or not many,
                dynamic_ncols=True):
            rgb = first
            if rgb is None:
                rgb = _read(source, on_error, skipped, load_image)
                if rgb is None:
                    plan.drop([*masks, *(overlays or ()), *(heatmaps or ())])
                    continue
            results = segmenter.segment(rgb, list(texts), threshold=threshold)
            done.append({"image": source,
                         "results": _write(plan, results, masks, overlays, heatmaps, colour)})
        if not done:
            from ..errors import ImageError

            raise ImageError(f"none of the {len(images)} images could be read; the first: "
                             f"{skipped[0]['error']}")
        plan.commit()
    except BaseException:
        plan.abort()
        raise
    for rec in skipped:
        click.echo(f"wsris: warning: skipped {rec['image']}: {rec['error']}", err=True)
    if as_json:
        if many or out_dir is not None:
            click.echo(json.dumps({"model": segmenter.name, "images": done,
                                   "skipped": skipped}))
        else:
            click.echo(json.dumps({"model": segmenter.name, "image": image,
                                   "results": done[0]["results"]}))
        return
    for entry in done:
        prefix = f"{entry['image']}: " if many else ""
        for res in entry["results"]:
            click.echo(f"{prefix}{shorten(res['text'], ECHO_CHARS)}: mask {res['mask_path']} "
                       f"({res['area']} px, bbox {res['bbox']})")


def _read(source: str, on_error: str, skipped: list[dict[str, str]], load_image: Any) -> Any:
    """One image of many; None (and a record in ``skipped``) when it cannot be read and
    ``on_error`` is skip."""
    from ..errors import ImageError

    try:
        return load_image(source)
    except ImageError as exc:
        if on_error == "fail":
            raise ImageError(f"{source}: {exc} (pass --on-error skip to leave unreadable "
                             "images out)") from exc
        skipped.append({"image": source, "error": str(exc)})
        return None


def _check_threshold(config: dict[str, Any], model: str) -> None:
    """Refuse --threshold where the model's masks do not come from thresholding."""
    from ..registry import get_method

    if "method" not in config:  # a manifest entry's config: the method is the entry's
        from ..weights.manifest import get_spec

        config = {**config, "method": get_spec(model).method}
    spec = get_method(config["method"])
    if not spec.threshold_sets_mask(config.get("inference", {})):
        raise click.UsageError(
            f"--threshold does not change the masks of {model} ({spec.name} method): "
            f"{spec.threshold_meaning}"
        )


def _write(plan: OutputPlan, results: list[Any], masks: list[Path],
           overlays: list[Path] | None, heatmaps: list[Path] | None,
           colour: tuple[int, int, int] | None = None) -> list[dict[str, Any]]:
    """Fill one image's planned files; its JSON entries."""
    report = []
    for i, result in enumerate(results):
        plan.write(masks[i], lambda p, f, r=result: r.mask_image().save(p, format=f))
        entry = {**result.to_dict(), "mask_path": str(masks[i])}
        if overlays is not None:
            plan.write(overlays[i],
                       lambda p, f, r=result: r.overlay(color=colour).save(p, format=f))
            entry["overlay_path"] = str(overlays[i])
        if heatmaps is not None:
            plan.write(heatmaps[i], lambda p, f, r=result: r.heatmap_image().save(p, format=f))
            entry["heatmap_path"] = str(heatmaps[i])
        report.append(entry)
    return report
