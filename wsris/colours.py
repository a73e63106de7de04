"""Overlay colours: the fill that stands out from the pixels under a mask, and parsing
colour names given on the command line.

A fixed fill colour vanishes on an object of that colour (red on a red circle), so by
default the fill is the colour of :data:`PALETTE` whose tint changes the object most
while keeping it distinct from its surroundings (:func:`contrasting_colour`); the
outline is two-tone (a light line edged in dark on both sides), visible on any
background.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError

Colour = tuple[int, int, int]

#: Saturated colours an overlay fill is chosen from, in order of preference on ties.
PALETTE: dict[str, Colour] = {
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "yellow": (255, 255, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "red": (255, 0, 0),
    "orange": (255, 128, 0),
}
#: Other names ``parse_colour`` accepts.
NAMED: dict[str, Colour] = {**PALETTE, "green": (0, 160, 0), "white": (255, 255, 255),
                            "black": (0, 0, 0)}
OUTLINE_DARK: Colour = (0, 0, 0)
OUTLINE_LIGHT: Colour = (255, 255, 255)
# Enough pixels to judge the colours under a mask; more only costs time.
_SAMPLE = 5_000
# The tint must lie this far from all but this percentage of the surrounding pixels.
AROUND_PERCENTILE = 20


def contrasting_colour(
    pixels: np.ndarray, around: np.ndarray | None = None, alpha: float = 0.5
) -> Colour:
    """The :data:`PALETTE` colour that makes the most visible tint of ``pixels``.

    ``pixels`` (``(N, 3)``) are those under the mask, ``around`` those just outside it.
    Tinting a pixel ``p`` with colour ``c`` gives ``(1 - alpha) p + alpha c``; a candidate
    scores the smaller of how far the tinted pixels move (mean distance) and how far their
    mean lies from the pixels of ``around`` (the 20th percentile of the distances, so a
    tint like most of the surroundings loses), so that the tinted object differs both from
    what it was and from what surrounds it (cyan on red moves far but turns grey, like a grey
    background). Without ``around`` only the first counts. Ties keep the palette's order;
    empty ``pixels`` give the first colour.
    """
    pixels = _sample(pixels)
    candidates = np.asarray(list(PALETTE.values()), dtype=np.float32)
    if len(pixels) == 0:
        return tuple(int(v) for v in candidates[0])  # type: ignore[return-value]
    moved = alpha * np.linalg.norm(pixels[None] - candidates[:, None], axis=2).mean(axis=1)
    score = moved
    around = None if around is None else _sample(around)
    if around is not None and len(around):
        tinted_mean = (1 - alpha) * pixels.mean(axis=0) + alpha * candidates
        # surroundings are often mixed (background, a neighbouring object): the tint must
        # differ from most of them, so a low percentile of the distances counts
        apart = np.linalg.norm(tinted_mean[:, None] - around[None], axis=2)
        score = np.minimum(moved, np.percentile(apart, AROUND_PERCENTILE, axis=1))
    return tuple(int(v) for v in candidates[int(np.argmax(score))])  # type: ignore[return-value]


def _sample(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels, dtype=np.float32).reshape(-1, 3)
    if len(pixels) > _SAMPLE:
        pixels = pixels[np.linspace(0, len(pixels) - 1, _SAMPLE).astype(int)]
    return pixels


def parse_colour(text: str) -> Colour | None:
    """A colour from the command line: ``auto`` (None: chosen per image), a name
    (``magenta``, ``cyan``, ... see :data:`NAMED`), ``#rrggbb`` or ``R,G,B`` (0..255)."""
    value = text.strip().lower()
    if value == "auto":
        return None
    if value in NAMED:
        return NAMED[value]
    if value.startswith("#") and len(value) == 7:
        try:
            return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in rgb):
            return rgb  # type: ignore[return-value]
    raise InvalidInputError(
        f"unknown colour {text!r}: use auto, a name ({', '.join(NAMED)}), #rrggbb or R,G,B "
        "with values 0..255"
    )
