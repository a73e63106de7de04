"""``wsris segment``: one image, one or more expressions.

Everything is checked before the model loads (the image is read, or fetched when it is a
URL; the texts are checked against the model's text settings; every output path is
validated and a temporary file made beside it), so a bad input fails in well under a
second. Outputs appear only when the whole run succeeded (see :mod:`wsris.cli.outputs`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from .outputs import MASK_FORMATS, OutputPlan, numbered

# Echoed texts longer than this are shortened (the JSON keeps them whole).
ECHO_CHARS = 60


@click.command("segment")
@click.argument("image")
@click.argument("texts", nargs=-1, required=True)
@click.option("--model", "-m", default=None,
              help="Model name from `wsris models`, a local folder, or hf-hub:org/repo@rev "
              "(default: the bundled model that scores best on shapes:val; `wsris models` "
              "names it).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("mask.png"),
              show_default=True,
              help="Mask PNG (255 inside). Several texts: out_0.png, out_1.png, ...")
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
@click.option("--threshold", "-t", type=click.FloatRange(0.0, 1.0), default=None,
              help="Threshold on the heat map (default: the model's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
              default="float32", show_default=True, help="bfloat16/float16 need CUDA.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per run: mask path, area, bbox, score per text.")
def segment_command(
    image: str,
    texts: tuple[str, ...],
    model: str | None,
    out: Path,
    overlay: Path | None,
    heatmap: Path | None,
    fmt: str | None,
    overwrite: bool,
    threshold: float | None,
    device: str,
    dtype: str,
    as_json: bool,
) -> None:
    """Segment what each TEXT refers to in IMAGE (a file or an http(s) URL) and write
    the mask(s). Nothing is written unless every text succeeds.

    \b
    Example:
      wsris segment photo.jpg "man in blue shirt" --overlay overlay.png
    """
    from ..images import is_url, load_image
    from ..text import shorten

    # 1. Output paths: cheap, and checked first so a typo costs nothing.
    count = len(texts)
    plan = OutputPlan(overwrite=overwrite, inputs=() if is_url(image) else (Path(image),))
    masks = [plan.add(numbered(out, i, count), "mask", fmt=fmt, mask=True)
             for i in range(count)]
    plan.numbered_family(out, count, "mask")
    overlays = heatmaps = None
    if overlay is not None:
        overlays = [plan.add(numbered(overlay, i, count), "overlay") for i in range(count)]
    if heatmap is not None:
        heatmaps = [plan.add(numbered(heatmap, i, count), "heatmap") for i in range(count)]

    # 2. The image, the model reference and the texts, before the model loads.
    rgb = load_image(image)
    if model is None:
        from ..registry import default_model

        model = default_model()[0]
    from ..model_ref import peek_config, text_tokenizer

    config = peek_config(model)
    if config is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real run below gives the warnings once
            text_tokenizer(config).check(list(texts))

    plan.prepare()
    try:
        import wsris

        segmenter = wsris.load(model, device=device, dtype=dtype)
        if segmenter.spec is not None and segmenter.spec.random_init:
            click.echo(
                f"wsris: warning: {segmenter.name} has RANDOMLY INITIALISED weights; its "
                "masks are meaningless (see `wsris models`)",
                err=True,
            )
        results = segmenter.segment(rgb, list(texts), threshold=threshold)
        report = []
        for i, result in enumerate(results):
            plan.write(masks[i], lambda p, f, r=result: r.mask_image().save(p, format=f))
            entry = {**result.to_dict(), "mask_path": str(masks[i])}
            if overlays is not None:
                plan.write(overlays[i], lambda p, f, r=result: r.overlay().save(p, format=f))
                entry["overlay_path"] = str(overlays[i])
            if heatmaps is not None:
                plan.write(heatmaps[i],
                           lambda p, f, r=result: r.heatmap_image().save(p, format=f))
                entry["heatmap_path"] = str(heatmaps[i])
            report.append(entry)
        plan.commit()
    except BaseException:
        plan.abort()
        raise
    if as_json:
        click.echo(json.dumps({"model": segmenter.name, "image": image, "results": report}))
        return
    for entry in report:
        click.echo(f"{shorten(entry['text'], ECHO_CHARS)}: mask {entry['mask_path']} "
                   f"({entry['area']} px, bbox {entry['bbox']})")
