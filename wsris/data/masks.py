"""COCO-style mask encodings: run-length (plain and compressed) and polygons.

Written from the description of the COCO format, with no pycocotools dependency:

* RLE runs are over the mask flattened in COLUMN-major order, alternating background and
  foreground and starting with background (a leading run of 0 when the first pixel is set).
* The compressed form stores each run as a little-endian sequence of 5-bit groups, one
  printable character (``48 + group``) per group, bit 0x20 meaning "more groups follow"
  and bit 0x10 of the last group the sign; from the fourth run on, the value stored is the
  difference to the run two places before.
* Polygons are rasterised by sampling each pixel at its centre ``(col + 0.5, row + 0.5)``
  (even-odd rule), so a polygon's pixel count is close to its area; several polygons of one
  annotation are unioned. pycocotools rasterises on a 5x finer grid, so a boundary pixel
  can differ now and then; interiors are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DatasetError

__all__ = [
    "rle_encode",
    "rle_decode",
    "rle_counts_to_string",
    "rle_string_to_counts",
    "polygons_to_mask",
    "segmentation_to_mask",
    "mask_bbox",
]


def rle_encode(mask: np.ndarray, compress: bool = True) -> dict[str, Any]:
    """Encode an HxW boolean mask as a COCO RLE dict ``{"size": [h, w], "counts": ...}``.

    ``counts`` is the compressed string when ``compress`` (what COCO json files hold), else
    a list of ints.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    h, w = mask.shape
    flat = mask.astype(bool).ravel(order="F")
    # Positions where the value changes, plus both ends.
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    if flat.size == 0:
        counts = []
    return {
        "size": [int(h), int(w)],
        "counts": rle_counts_to_string(counts) if compress else [int(c) for c in counts],
    }


def rle_counts_to_string(counts: Sequence[int]) -> str:
    """Compress a list of run lengths into COCO's string form."""
    out: list[str] = []
    for i, run in enumerate(counts):
        x = int(run)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: -1 stays -1
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_string_to_counts(s: str | bytes) -> list[int]:
    """Decompress COCO's string form into a list of run lengths."""
    if isinstance(s, bytes):
        s = s.decode("ascii")
    counts: list[int] = []
    p = 0
    n = len(s)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise DatasetError(f"truncated compressed RLE string {s[:40]!r}")
            c = ord(s[p]) - 48
            if c < 0 or c > 63:
                raise DatasetError(f"invalid character {s[p]!r} in compressed RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)  # sign-extend
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (compressed string or list of counts) to an HxW bool mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"malformed RLE segmentation: {rle!r:.80}") from exc
    if isinstance(counts, (str, bytes)):
        counts = rle_string_to_counts(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any() or int(counts.sum()) != h * w:
        raise DatasetError(
            f"RLE counts sum to {int(counts.sum())} but the mask has {h}x{w}={h * w} pixels"
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((w, h)).T.copy()


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` into one HxW bool mask.

    A pixel is set when its centre lies inside any polygon (even-odd rule per polygon).
    Polygons with fewer than three points have no area and set nothing.
    """
    out = np.zeros((height, width), dtype=bool)
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1)
        if pts.size % 2:
            raise DatasetError(f"polygon with an odd number of coordinates ({pts.size})")
        pts = pts.reshape(-1, 2)
        if len(pts) < 3:
            continue
        out |= _fill_polygon(pts, height, width)
    return out


def _fill_polygon(pts: np.ndarray, height: int, width: int) -> np.ndarray:
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    ys = np.arange(height, dtype=np.float64)[:, None] + 0.5  # [H, 1] row centres
    # Half-open rule: an edge crosses row y when exactly one end is at or below y.
    crosses = (y0[None, :] <= ys) != (y1[None, :] <= ys)  # [H, E]
    rows, edges = np.nonzero(crosses)
    if rows.size == 0:
        return np.zeros((height, width), dtype=bool)
    ya, yb = y0[edges], y1[edges]
    xa, xb = x0[edges], x1[edges]
    xi = xa + (ys[rows, 0] - ya) * (xb - xa) / (yb - ya)
    # Pixel c is inside when an odd number of crossings lie at or left of its centre
    # c + 0.5, i.e. c >= ceil(xi - 0.5): spans are half-open [x_left, x_right).
    start = np.clip(np.ceil(xi - 0.5).astype(np.int64), 0, width)
    toggles = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(toggles, (rows, start), 1)
    return (np.cumsum(toggles, axis=1)[:, :width] % 2) == 1


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` field (polygon list or RLE dict) to HxW bool."""
    if isinstance(segmentation, dict):
        mask = rle_decode(segmentation)
        if mask.shape != (height, width):
            raise DatasetError(
                f"RLE of size {mask.shape[0]}x{mask.shape[1]} for an image of {height}x{width}"
            )
        return mask
    if isinstance(segmentation, (list, tuple)):
        if segmentation and isinstance(segmentation[0], (int, float)):
            segmentation = [segmentation]  # a single flat polygon
        return polygons_to_mask(segmentation, height, width)
    raise DatasetError(f"unsupported segmentation of type {type(segmentation).__name__}")


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """COCO-style ``(x, y, w, h)`` box of the set pixels, ``(0, 0, 0, 0)`` when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return (0, 0, 0, 0)
    x, y = int(xs.min()), int(ys.min())
    return (x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1)
