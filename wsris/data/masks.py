"""COCO-style mask encodings: run-length (plain and compressed) and polygons.

Decoding a dataset's ``segmentation`` (:func:`segmentation_to_mask`) and rasterising
polygons (:func:`polygons_to_mask`) use pycocotools, exactly as the REFER API and COCO's
``annToRLE`` do (``frPyObjects``, ``merge``, ``decode``), so masks equal the official
ones pixel for pixel. Encoding (for exports) and the string codec are written here from
the description of the format, and tested against pycocotools:

* RLE runs are over the mask flattened in COLUMN-major order, alternating background and
  foreground and starting with background (a leading run of 0 when the first pixel is set).
* The compressed form stores each run as a little-endian sequence of 5-bit groups, one
  printable character (``48 + group``) per group, bit 0x20 meaning "more groups follow"
  and bit 0x10 of the last group the sign; from the fourth run on, the value stored is the
  difference to the run two places before.
* Polygons with fewer than three points have no area and are left out (pycocotools would
  take a 4-number list for a box).
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
        try:
            s = s.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DatasetError("compressed RLE string is not ASCII") from exc
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


def _check_runs(runs: np.ndarray, h: int, w: int) -> None:
    """RLE runs must be non-negative and cover the mask exactly."""
    if (runs < 0).any():
        first = int(np.flatnonzero(runs < 0)[0])
        raise DatasetError(f"RLE counts hold a negative run ({int(runs[first])} at position "
                           f"{first})")
    if int(runs.sum()) != h * w:
        raise DatasetError(
            f"RLE counts sum to {int(runs.sum())} but the mask has {h}x{w}={h * w} pixels"
        )


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
    _check_runs(counts, h, w)
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((w, h)).T.copy()


#: Polygon coordinates beyond this are refused (pycocotools works in 32-bit integers).
MAX_COORDINATE = 1e7


def _polygon_list(polygons: Sequence[Sequence[float]]) -> list[list[float]]:
    out = []
    for poly in polygons:
        try:
            pts = np.asarray(poly, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"polygon is not a list of numbers: {poly!r:.80}") from exc
        if pts.size % 2:
            raise DatasetError(f"polygon with an odd number of coordinates ({pts.size})")
        if not np.isfinite(pts).all() or (np.abs(pts) > MAX_COORDINATE).any():
            raise DatasetError(
                f"polygon with a NaN, infinite or absurd coordinate (beyond {MAX_COORDINATE:g})"
            )
        if pts.size >= 6:
            out.append(pts.tolist())
    return out


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` into one HxW bool mask,
    as pycocotools does (``frPyObjects`` then ``merge``: the union of the polygons).
    Polygons with fewer than three points have no area and set nothing."""
    from pycocotools import mask as coco_mask

    kept = _polygon_list(polygons)
    if not kept or height <= 0 or width <= 0:
        return np.zeros((max(height, 0), max(width, 0)), dtype=bool)
    rles = coco_mask.frPyObjects(kept, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def _rle_to_mask(rle: dict[str, Any], height: int, width: int) -> np.ndarray:
    from pycocotools import mask as coco_mask

    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"malformed RLE segmentation: {rle!r:.80}") from exc
    if (h, w) != (height, width):
        raise DatasetError(f"RLE of size {h}x{w} for an image of {height}x{width}")
    if isinstance(counts, list):  # uncompressed (crowd) form
        try:
            runs = np.asarray(counts, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DatasetError(f"RLE counts are not a list of integers: {counts!r:.60}") from exc
        if runs.size != len(counts):
            raise DatasetError(f"RLE counts are not a flat list: {counts!r:.60}")
        counts = runs.tolist()
        _check_runs(runs, h, w)
        compressed = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, (str, bytes)):
        try:
            runs = np.asarray(rle_string_to_counts(counts), dtype=np.int64)  # validates it
        except OverflowError as exc:
            raise DatasetError("compressed RLE string with an absurd run length") from exc
        text = counts.encode("ascii") if isinstance(counts, str) else counts
        _check_runs(runs, h, w)
        compressed = {"size": [h, w], "counts": text}
    else:
        raise DatasetError(f"RLE counts of type {type(counts).__name__}")
    return coco_mask.decode(compressed).astype(bool)


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` field (polygon list, or RLE with compressed or
    uncompressed counts) to an HxW bool mask, with pycocotools as COCO's ``annToRLE`` and
    the REFER API do."""
    if isinstance(segmentation, dict):
        return _rle_to_mask(segmentation, height, width)
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
