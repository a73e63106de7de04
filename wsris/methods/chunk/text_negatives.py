"""Perturbed-text negatives for image-text matching: a positive caption with one content
word swapped for another of its kind ("the red circle" -> "the blue circle", "left of" ->
"right of"), paired with the caption's own image as a negative.

Random negatives drawn from other images of the batch can be solved by checking which
objects are present; a swapped word can only be caught by checking it against the object
it describes, which is what a Grad-CAM of the match needs to point at. This is the
text-side hard negative of NegCLIP (Yuksekgonul et al. 2023), applied to ITM. It reads the
caption only, never the scene, so a swapped caption can by chance still be true of the
image (a blue circle may also be present): a label-noise rate the caller accepts.

The swap classes are given by the caller (a dataset's vocabulary); :data:`SHAPES_REF_SWAPS`
is the one for Shapes-Ref.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ...data.shapes import COLOURS, SHAPES, SIZES

#: Word classes whose members may replace each other, and direction words that swap with
#: their opposite only.
SHAPES_REF_SWAPS: tuple[tuple[str, ...], ...] = (
    tuple(COLOURS),
    SHAPES,
    SIZES,
    ("left", "right"),
    ("leftmost", "rightmost"),
    ("above", "below"),
    ("above", "under"),
    ("top", "bottom"),
    ("topmost", "lowest"),
)


def build_swap_table(classes: Sequence[Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """word -> the words it may be swapped for (every other member of each of its
    classes)."""
    table: dict[str, set[str]] = {}
    for cls in classes:
        for word in cls:
            table.setdefault(word, set()).update(w for w in cls if w != word)
    return {w: tuple(sorted(others)) for w, others in table.items() if others}


def perturb_caption(
    text: str, table: dict[str, tuple[str, ...]], rng: random.Random
) -> str | None:
    """``text`` with one swappable word (chosen by ``rng``) replaced by another of its
    class; None when no word of ``text`` can be swapped. Words are whitespace-split and
    matched in lower case; the result is lower case."""
    words = text.lower().split()
    slots = [i for i, w in enumerate(words) if w in table]
    if not slots:
        return None
    i = rng.choice(slots)
    words[i] = rng.choice(table[words[i]])
    return " ".join(words)
