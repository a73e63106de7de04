"""The demo's example images: Shapes-Ref test scenes, rendered on demand (nothing to ship)
with the phrases the generator wrote for them, which the bundled models were trained on."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

#: Shapes-Ref test scenes shown as examples (scene 3 is examples/shapes_scene.png).
SCENES: tuple[int, ...] = (3, 1, 2, 7)
IMAGE_SIZE = 256


@dataclass(frozen=True)
class Example:
    id: str
    phrases: tuple[str, ...]
    objects: tuple[str, ...]


@cache
def _scene(index: int):
    from ..data.shapes import ShapesRef

    return ShapesRef("test", image_size=IMAGE_SIZE, expressions_per_scene=4)[index]


def examples() -> list[Example]:
    """Every example, with its phrases and objects."""
    out = []
    for index in SCENES:
        scene = _scene(index)
        out.append(Example(
            id=f"shapes-test-{index}",
            phrases=tuple(e.text for e in scene.expressions),
            objects=tuple(f"{o.size} {o.colour} {o.shape}" for o in scene.objects),
        ))
    return out


def example_image(example_id: str) -> np.ndarray:
    """The RGB image of an example; KeyError for an unknown id."""
    for index in SCENES:
        if example_id == f"shapes-test-{index}":
            return _scene(index).image
    raise KeyError(example_id)
