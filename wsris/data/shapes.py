"""Shapes-Ref: a procedural referring-segmentation benchmark.

Every sample is a pure function of ``(split, index, seed)`` and the configuration: a scene
of 2 to 6 coloured shapes on a varied background (gradients, smooth noise, clutter), exact
instance masks, and referring expressions that the generator has checked pick out exactly
one object. Expressions are tagged with their kind:

* ``attribute``: "the small red circle", "green square", "the large shape";
* ``relation``:  "the triangle left of the green star", "blue square below the red
  circle", "the circle next to the yellow hexagon";
* ``location``:  "the leftmost square", "the red shape at the top" (left out of the
  RefCOCO+-like ``plus`` variant, as RefCOCO+ has no location words);
* ``negation``:  "the circle that is not red" (a small share, for failure analysis).

Scenes are built around a target that shares its shape with one distractor and its colour
with another, so no single word singles it out. The ``compositional`` split targets only
colour-shape pairs (``ShapesConfig.heldout_pairs``) that never appear in any object of
``train``, ``val`` or ``test``.

Relations are judged on object centres with a dead zone: an expression is kept only when
the target clearly satisfies it and every other candidate clearly does not, so borderline
scenes never produce an ambiguous label.

The benchmark is three modules: :mod:`.shapes_grammar` (vocabulary, configuration,
expression semantics and generation), :mod:`.shapes_render` (the scene renderer) and this
one, the datasets; every public name of the three is importable from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError
from .base import RefSample
from .shapes_grammar import (
    COLOURS,
    KINDS,
    SHAPES,
    SPLITS,
    VARIANTS,
    Expression,
    ShapeObject,
    ShapesConfig,
    variant_config,
    vocabulary,
)
from .shapes_grammar import LOCATIONS as LOCATIONS
from .shapes_grammar import RELATIONS as RELATIONS
from .shapes_grammar import SIZES as SIZES
from .shapes_render import ShapesSample, generate_sample

__all__ = [
    "COLOURS",
    "SHAPES",
    "KINDS",
    "SPLITS",
    "VARIANTS",
    "ShapesConfig",
    "ShapeObject",
    "Expression",
    "ShapesSample",
    "ShapesRef",
    "ShapesReferring",
    "generate_sample",
    "variant_config",
    "vocabulary",
]


# --------------------------------------------------------------------------------------
# Datasets


class ShapesRef:
    """Shapes-Ref scenes of one split: ``dataset[i]`` is a :class:`ShapesSample`.

    Usable as a map-style torch dataset (pass ``collate_fn=list`` or use
    ``ShapesSample.to_dict``); picklable, so DataLoader workers can generate in parallel.

    >>> ds = ShapesRef("val")            # the fixed benchmark split, 1000 scenes
    >>> ds[0].expressions[0].text        # doctest: +SKIP
    'the small red circle'
    """

    def __init__(self, split: str = "train", *, variant: str = "default", seed: int = 0,
                 length: int | None = None, config: ShapesConfig | None = None,
                 **overrides: Any) -> None:
        if split not in SPLITS:
            raise InvalidInputError(
                f"unknown Shapes-Ref split {split!r}; known: {', '.join(SPLITS)}"
            )
        if config is not None and overrides:
            raise InvalidInputError("pass either config or field overrides, not both")
        self.config = (config if config is not None
                       else variant_config(variant, split=split, **overrides))
        self.split = split
        self.variant = variant
        self.seed = int(seed)
        self.length = int(length) if length is not None else self.config.split_size(split)
        if self.length < 0:
            raise InvalidInputError(f"length must be non-negative, got {length}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> ShapesSample:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        return self._scene(index)

    def _scene(self, index: int) -> ShapesSample:
        """Scene ``index`` (in range): rendered here; a cache reads it instead."""
        return generate_sample(self.split, index, self.seed, self.config, self.variant)

    def __iter__(self) -> Iterator[ShapesSample]:
        for i in range(self.length):
            yield self[i]

    def referring(self) -> ShapesReferring:
        """A flat view with one :class:`RefSample` per expression (for evaluation)."""
        return ShapesReferring(self)

    def __repr__(self) -> str:
        return (f"ShapesRef(split={self.split!r}, variant={self.variant!r}, seed={self.seed}, "
                f"length={self.length}, image_size={self.config.image_size})")


@dataclass
class ShapesReferring:
    """One sample per (scene, expression), in scene order; len = scenes x expressions."""

    scenes: ShapesRef
    _cache: tuple[int, ShapesSample] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        v = "" if self.scenes.variant == "default" else f":{self.scenes.variant}"
        return f"shapes{v}:{self.scenes.split}"

    @property
    def per_scene(self) -> int:
        return self.config.expressions_per_scene

    @property
    def config(self) -> ShapesConfig:
        """The generator configuration of the scenes (margins, image size)."""
        return self.scenes.config

    def __len__(self) -> int:
        return len(self.scenes) * self.per_scene

    def image_key(self, index: int) -> int:
        return index // self.per_scene

    def scene(self, scene_index: int) -> ShapesSample:
        if self._cache is None or self._cache[0] != scene_index:
            self._cache = (scene_index, self.scenes[scene_index])
        return self._cache[1]

    def __getitem__(self, index: int) -> RefSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        s, j = divmod(index, self.per_scene)
        scene = self.scene(s)
        e = scene.expressions[j]
        return RefSample(
            sample_id=f"{scene.split}/{s}/{j}",
            image_id=s,
            image=scene.image,
            text=e.text,
            mask=scene.objects[e.target].mask,
            object_masks=[o.mask for o in scene.objects],
            kind=e.kind,
        )
