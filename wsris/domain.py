"""Whether an image looks like what a model was trained on (its domain).

A model trained on synthetic pictures carries its domain in ``config.json``::

    "domain": {"name": "shapes-ref",
               "description": "flat-coloured circles, squares, ...",
               "palette": [[220, 35, 35], ...]}

:func:`judge` reads three statistics of the image at the model's working scale (the
shorter side brought to 128 px), each of which a drawing of flat-coloured shapes passes
and a photograph fails:

* ``palette_fit``: of the clearly coloured pixels (where there are more than a few),
  the share lying near one of the domain's colours (photographs have colours between
  and beside them, in gradations);
* ``detail``: the share of pixels on edges once small noise is smoothed away (shapes
  give a few clean outlines; photographs have texture and detail everywhere);
* ``flat_grey``: for an image with almost no clearly coloured pixels (``coloured``
  below ``min_coloured``: a grey photograph, or a drawing of white shapes only), the
  share of pixels in its two most common grey levels (a plain background and white
  shapes fill nearly all of a drawing; a grey photograph spreads over many levels).

The judgement is a score in [0, 1] (1: squarely in the domain) and a verdict. The
thresholds were set from measurements: every scikit-image photograph falls outside,
and about 1 in 1,000 Shapes-Ref and drawings images does (see docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import WsrisWarning

__all__ = ["DomainJudgement", "DomainWarning", "image_statistics", "judge", "SHAPES_DOMAIN"]


class DomainWarning(WsrisWarning):
    """The image is unlike anything the model was trained on; its mask is unreliable.
    Filter it with ``warnings.filterwarnings("ignore", category=DomainWarning)``."""


#: The domain of the models trained on Shapes-Ref (its eight object colours).
SHAPES_DOMAIN: dict[str, Any] = {
    "name": "shapes-ref",
    "description": ("drawings of flat-coloured shapes (circle, square, triangle, star, "
                    "hexagon) in 8 colours on plain or softly textured backgrounds"),
    # Shapes-Ref's 8 object colours, then the same 8 names as drawing programs give them
    # (CSS / PIL named colours: red, lime, green, blue, yellow, purple, orange, white, cyan)
    "palette": [[220, 35, 35], [35, 170, 55], [40, 80, 235], [240, 215, 30],
                [150, 55, 205], [250, 135, 15], [245, 245, 245], [30, 210, 220],
                [255, 0, 0], [0, 255, 0], [0, 128, 0], [0, 0, 255], [255, 255, 0],
                [128, 0, 128], [255, 165, 0], [255, 255, 255], [0, 255, 255]],
    "min_palette_fit": 0.5,
    "min_coloured": 0.004,
    "min_flat_grey": 0.9,
    "max_detail": 0.25,
}

_SCALE = 128  # the shorter side the statistics are measured at
_SOME_COLOUR = 0.0005  # share of coloured pixels above which their colours are checked
_NEAR = 40.0  # RGB distance to a palette colour that still counts as that colour


@dataclass(frozen=True)
class DomainJudgement:
    """``in_domain``: whether the image passes every check; ``score`` in [0, 1], the
    smallest of the checks' margins mapped to [0, 1] (0.5 at a threshold);
    ``statistics``: the measured values; ``domain``: the domain's description."""

    in_domain: bool
    score: float
    statistics: dict[str, float]
    domain: str


def _working_scale(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    f = _SCALE / min(h, w)
    if f < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))),
                         interpolation=cv2.INTER_AREA)
    return rgb


def image_statistics(rgb: np.ndarray, palette: Any) -> dict[str, float]:
    """``palette_fit``, ``coloured``, ``detail`` and ``flat_grey`` of an RGB uint8 image
    (see the module docstring)."""
    import cv2

    img = cv2.medianBlur(np.ascontiguousarray(_working_scale(rgb)), 3)
    x = img.astype(np.float32)
    saturation = x.max(axis=2) - x.min(axis=2)
    coloured = saturation > 80  # clearly coloured: one channel well above another
    pal = np.asarray(palette, np.float32)
    near = np.full(coloured.shape, False)
    if coloured.any():
        d = np.linalg.norm(x[coloured][:, None, :] - pal[None], axis=2).min(axis=1)
        near[coloured] = d < _NEAR
    n_col = int(coloured.sum())
    grey_u8 = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    levels = np.bincount((grey_u8 // 8).ravel(), minlength=32)
    gray = grey_u8.astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    edges = np.hypot(gx, gy) > 80
    return {
        "palette_fit": float(near.sum() / n_col) if n_col else 0.0,
        "coloured": float(n_col / coloured.size),
        "detail": float(edges.mean()),
        "flat_grey": float(np.sort(levels)[-2:].sum() / grey_u8.size),
    }


def _margin(value: float, threshold: float, above: bool) -> float:
    """A check's margin mapped to [0, 1]: 0.5 at the threshold, towards 1 as the value
    moves to the passing side by the threshold's own size (or by 0.25 for a threshold
    near 0)."""
    span = max(abs(threshold), 0.25 if threshold > 0.05 else 0.01)
    m = (value - threshold) / span if above else (threshold - value) / span
    return float(np.clip(0.5 + 0.5 * m, 0.0, 1.0))


def judge(rgb: np.ndarray, domain: dict[str, Any]) -> DomainJudgement:
    """Whether ``rgb`` (``H x W x 3`` uint8) looks like the pictures of ``domain`` (a
    model config's ``domain`` entry)."""
    stats = image_statistics(rgb, domain["palette"])
    margins = [_margin(stats["detail"], float(domain["max_detail"]), above=False)]
    if stats["coloured"] >= _SOME_COLOUR:  # any colour there is must be the domain's
        margins.append(_margin(stats["palette_fit"], float(domain["min_palette_fit"]),
                               above=True))
    if stats["coloured"] < float(domain["min_coloured"]):
        margins.append(_margin(stats["flat_grey"], float(domain["min_flat_grey"]),
                               above=True))
    score = min(margins)
    return DomainJudgement(in_domain=score > 0.5, score=score, statistics=stats,
                           domain=str(domain.get("description", domain.get("name", ""))))
