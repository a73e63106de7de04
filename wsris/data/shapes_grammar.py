"""Shapes-Ref's grammar: the vocabulary, the scene configuration, what an expression
means on a scene (its semantics) and how expressions are generated and checked.

See :mod:`wsris.data.shapes` for the benchmark as a whole; rendering is in
:mod:`wsris.data.shapes_render`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError

#: Colour names and their nominal RGB (objects get a small per-object jitter).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (35, 170, 55),
    "blue": (40, 80, 235),
    "yellow": (240, 215, 30),
    "purple": (150, 55, 205),
    "orange": (250, 135, 15),
    "white": (245, 245, 245),
    "cyan": (30, 210, 220),
    "pink": (250, 120, 190),
}

#: Every shape the renderer can draw. The default configuration uses the first five.
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "hexagon", "diamond", "pentagon",
)

KINDS: tuple[str, ...] = ("attribute", "relation", "location", "negation")
SPLITS: dict[str, int] = {"train": 1, "val": 2, "test": 3, "compositional": 4, "drawings": 5}
SIZES: tuple[str, ...] = ("small", "large")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to")
LOCATIONS: tuple[str, ...] = ("left", "right", "top", "bottom")
BACKGROUNDS: tuple[str, ...] = ("textured", "plain", "gradient")
OUTLINE_STYLES: tuple[str, ...] = ("dark", "shade", "grey")

_RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of"),
    "right of": ("right of", "to the right of"),
    "above": ("above",),
    "below": ("below", "under"),
    "next to": ("next to", "beside"),
}
_LOCATION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "left": ("the leftmost {np}", "the {np} on the left"),
    "right": ("the rightmost {np}", "the {np} on the right"),
    "top": ("the topmost {np}", "the {np} at the top"),
    "bottom": ("the lowest {np}", "the {np} at the bottom"),
}

@dataclass(frozen=True)
class ShapesConfig:
    """Every knob of the generator. Fractions are of the image side.

    The benchmark's val, test and compositional splits are those of the default
    configuration (``variant="default"``, ``seed=0``); training variants change only what
    a model trains on.
    """

    image_size: int = 128
    min_objects: int = 2
    max_objects: int = 6
    shapes: tuple[str, ...] = SHAPES[:5]
    colours: tuple[str, ...] = (
        "red", "green", "blue", "yellow", "purple", "orange", "white", "cyan",
    )
    #: Nominal diameter ranges (fraction of the image side) of small and large objects:
    #: 18-23 px and 32-45 px at 128 px, so a large object spans 4-6 tokens of an 8-px grid
    #: and a small one 2-3, and even a small hexagon shows its corners.
    small_diameter: tuple[float, float] = (0.14, 0.18)
    large_diameter: tuple[float, float] = (0.25, 0.35)
    #: Multiplies both diameter ranges (an "object scale" difficulty knob).
    scale: float = 1.0
    p_large: float = 0.5
    #: Allowed overlap of two objects' bounding circles, as a fraction of the sum of their
    #: radii; the later object occludes the earlier one and masks stay exact and disjoint.
    max_overlap: float = 0.1
    #: Relative frequency of each expression kind; a kind with weight 0 never occurs.
    kind_weights: tuple[tuple[str, float], ...] = (
        ("attribute", 0.4), ("relation", 0.3), ("location", 0.2), ("negation", 0.1),
    )
    relations: tuple[str, ...] = RELATIONS
    expressions_per_scene: int = 2
    #: Colour-shape pairs that are only ever targets in the compositional split and never
    #: appear at all in the other splits.
    heldout_pairs: tuple[tuple[str, str], ...] = (
        ("red", "triangle"), ("green", "circle"), ("blue", "star"), ("yellow", "square"),
        ("purple", "hexagon"), ("orange", "star"), ("white", "triangle"), ("cyan", "square"),
    )
    #: Clear-relation margin, "next to" distance and location margin (fractions).
    relation_margin: float = 0.06
    near_distance: float = 0.1
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    clutter_probability: float = 0.6
    split_sizes: tuple[tuple[str, int], ...] = (
        ("train", 100_000), ("val", 1000), ("test", 1000), ("compositional", 1000),
        ("drawings", 1000),
    )
    # Rendering styles. The defaults are the benchmark's renderer; the training variant
    # ``drawn`` and the ``drawings`` split set them (see ``VARIANTS`` and ``DRAWINGS``).
    #: (width, height) choices, one drawn per scene; empty: ``image_size`` square. Object
    #: sizes and margins are then fractions of the scene's shorter side.
    canvas_sizes: tuple[tuple[int, int], ...] = ()
    #: Background styles, one drawn per scene: ``textured`` (muted gradient or smooth
    #: noise with texture and clutter), ``plain`` (one flat colour of ``plain_colours``)
    #: or ``gradient`` (a linear or radial blend of two of them).
    backgrounds: tuple[str, ...] = ("textured",)
    plain_colours: tuple[tuple[int, int, int], ...] = ()
    #: Anti-aliased shape edges (partial coverage blended); a pixel belongs to an
    #: object's mask when more than half of it is covered.
    antialias: bool = False
    #: Per-scene object scale drawn from this range (multiplies ``scale``).
    scale_range: tuple[float, float] | None = None
    #: Share of scenes whose shapes get an outline; an object whose colour is close to a
    #: plain background always gets one. Outlines lie inside the mask.
    outline_probability: float = 0.0
    #: Outline width range, as a fraction of the scene's shorter side.
    outline_width: tuple[float, float] = (0.006, 0.016)
    #: Outline colours: ``dark`` (near black), ``shade`` (a darker shade of the fill) or
    #: ``grey`` (mid grey), one drawn per scene.
    outline_styles: tuple[str, ...] = ("dark", "shade")

    def __post_init__(self) -> None:
        if self.image_size < 32:
            raise InvalidInputError(f"image_size must be at least 32, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise InvalidInputError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, "
                f"{self.max_objects}"
            )
        if self.max_objects > 12:
            raise InvalidInputError(f"max_objects is at most 12, got {self.max_objects}")
        for s in self.shapes:
            if s not in SHAPES:
                raise InvalidInputError(f"unknown shape {s!r}; known: {', '.join(SHAPES)}")
        for c in self.colours:
            if c not in COLOURS:
                raise InvalidInputError(f"unknown colour {c!r}; known: {', '.join(COLOURS)}")
        if len(self.shapes) < 2 or len(self.colours) < 2:
            raise InvalidInputError("need at least two shapes and two colours")
        weights = dict(self.kind_weights)
        for k, w in weights.items():
            if k not in KINDS or w < 0:
                raise InvalidInputError(f"bad kind weight {k!r}: {w}")
        if sum(weights.values()) <= 0:
            raise InvalidInputError("kind_weights must give some kind a positive weight")
        for r in self.relations:
            if r not in RELATIONS:
                raise InvalidInputError(f"unknown relation {r!r}; known: {RELATIONS}")
        if self.expressions_per_scene < 1:
            raise InvalidInputError("expressions_per_scene must be at least 1")
        if not 0 <= self.max_overlap < 0.5:
            raise InvalidInputError("max_overlap must be in [0, 0.5)")
        for w, h in self.canvas_sizes:
            if min(w, h) < 32:
                raise InvalidInputError(f"canvas sides must be at least 32, got {w}x{h}")
        for b in self.backgrounds:
            if b not in BACKGROUNDS:
                raise InvalidInputError(f"unknown background {b!r}; known: {BACKGROUNDS}")
        if not self.backgrounds:
            raise InvalidInputError("backgrounds must name at least one style")
        if set(self.backgrounds) - {"textured"} and not self.plain_colours:
            raise InvalidInputError("plain and gradient backgrounds need plain_colours")
        for o in self.outline_styles:
            if o not in OUTLINE_STYLES:
                raise InvalidInputError(f"unknown outline style {o!r}; known: {OUTLINE_STYLES}")

    @property
    def weights(self) -> dict[str, float]:
        return {k: float(w) for k, w in self.kind_weights if w > 0}

    def split_size(self, split: str) -> int:
        return dict(self.split_sizes)[split]

    def replace(self, **changes: Any) -> ShapesConfig:
        return dataclasses.replace(self, **changes)


#: Named difficulty presets (overrides of the default configuration).
VARIANTS: dict[str, dict[str, Any]] = {
    # The benchmark.
    "default": {},
    # RefCOCO+-like: no location words at all, so no "leftmost", no "left of"/"above".
    "plus": {
        "kind_weights": (("attribute", 0.55), ("relation", 0.3), ("negation", 0.15)),
        "relations": ("next to",),
    },
    # Curriculum for training: attributes only, then attributes + relations.
    "attributes": {"kind_weights": (("attribute", 1.0),), "max_objects": 4},
    "relations": {"kind_weights": (("attribute", 0.5), ("relation", 0.5))},
    # The easiest stage: 2-3 large objects, attribute phrases.
    "easy": {
        "kind_weights": (("attribute", 1.0),), "min_objects": 2, "max_objects": 3,
        "p_large": 1.0,
    },
    # Training only: pictures like the ones people draw, beside the benchmark's look.
    # Plain, gradient and textured backgrounds (white and black among the plain ones),
    # square and non-square canvases (3:4 to 16:9, shorter side 96-256 px), anti-aliased
    # shapes over a wider range of sizes and counts, with and without outlines.
    "drawn": {
        "canvas_sizes": (
            (96, 96), (128, 128), (160, 160), (192, 192), (256, 256),
            (120, 160), (144, 192), (192, 256),  # 3:4
            (128, 96), (160, 120), (192, 144), (256, 192),  # 4:3
            (192, 128), (240, 160),  # 3:2
            (192, 108), (224, 126), (256, 144),  # 16:9
        ),
        "backgrounds": ("plain", "plain", "gradient", "textured"),
        "plain_colours": (
            (255, 255, 255), (0, 0, 0), (235, 235, 235), (128, 128, 128), (40, 40, 40),
            (255, 250, 205), (220, 235, 250), (250, 225, 235), (225, 245, 225),
            (245, 240, 225), (60, 40, 80), (20, 60, 60),
        ),
        "antialias": True,
        "scale_range": (0.7, 1.5),
        "min_objects": 2,
        "max_objects": 8,
        "outline_probability": 0.4,
        "outline_width": (0.006, 0.016),
        "outline_styles": ("dark", "shade"),
        "noise_sigma": (0.0, 4.0),
        "clutter_probability": 0.3,
    },
}

#: The held-out ``drawings`` split's rendering, applied over any variant: choices that no
#: training variant uses (background colours, canvas sizes, outline colour and widths),
#: so it measures generalisation to drawings rather than memory of a renderer.
DRAWINGS: dict[str, Any] = {
    "canvas_sizes": (
        (320, 240), (500, 500), (600, 800), (640, 480), (720, 540), (800, 450),
        (900, 600), (1024, 576), (480, 640), (600, 600),
    ),
    "backgrounds": ("plain", "plain", "plain", "gradient"),
    "plain_colours": (
        (250, 247, 238), (18, 22, 38), (200, 200, 200), (236, 226, 245), (255, 236, 214),
        (210, 220, 228), (90, 90, 90), (230, 245, 240),
    ),
    "antialias": True,
    "scale_range": (0.8, 1.3),
    "min_objects": 2,
    "max_objects": 6,
    "outline_probability": 0.4,
    "outline_width": (0.018, 0.024),
    "outline_styles": ("grey",),
    "noise_sigma": (0.0, 0.0),
    "clutter_probability": 0.0,
}


def variant_config(variant: str = "default", *, split: str | None = None,
                   **overrides: Any) -> ShapesConfig:
    """The configuration of a named variant, with optional field overrides; for the
    ``drawings`` split, with its held-out rendering (:data:`DRAWINGS`) on top."""
    if variant not in VARIANTS:
        raise InvalidInputError(
            f"unknown Shapes-Ref variant {variant!r}; known: {', '.join(VARIANTS)}"
        )
    style = DRAWINGS if split == "drawings" else {}
    return ShapesConfig(**{**VARIANTS[variant], **style, **overrides})


@dataclass
class ShapeObject:
    """One object of a scene. ``mask`` is exact (the pixels coloured as this object)."""

    shape: str
    colour: str
    size: str
    center: tuple[float, float]  # (x, y) in pixels
    radius: float  # circumradius in pixels
    bbox: tuple[int, int, int, int]  # (x, y, w, h) of the mask
    mask: np.ndarray  # HxW bool
    rgb: tuple[int, int, int]

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Expression:
    """A referring expression; ``target`` indexes ``ShapesSample.objects``."""

    text: str
    target: int
    kind: str


# --------------------------------------------------------------------------------------
# Semantics


@dataclass(frozen=True)
class _Desc:
    """A noun phrase: a conjunction of attributes (None = unconstrained)."""

    size: str | None = None
    colour: str | None = None
    shape: str | None = None

    def matches(self, o: ShapeObject) -> bool:
        return (
            (self.size is None or o.size == self.size)
            and (self.colour is None or o.colour == self.colour)
            and (self.shape is None or o.shape == self.shape)
        )

    def phrase(self) -> str:
        words = [w for w in (self.size, self.colour) if w]
        words.append(self.shape or "shape")
        return " ".join(words)

    @property
    def length(self) -> int:
        return sum(v is not None for v in (self.size, self.colour, self.shape))


def vocabulary() -> frozenset[str]:
    """Every word a Shapes-Ref expression can contain, in any variant: colours, shapes,
    sizes, the relation and location phrases, and the grammar's function words."""
    words = {*COLOURS, *SHAPES, *SIZES, "shape", "the", "a", "that", "is", "not"}
    for phrases in (*_RELATION_WORDS.values(), *_LOCATION_TEMPLATES.values()):
        for phrase in phrases:
            words.update(w for w in phrase.split() if w != "{np}")
    return frozenset(words)


def _descriptors(o: ShapeObject) -> list[_Desc]:
    """All non-empty attribute conjunctions true of ``o``."""
    out = []
    for use_size, use_colour, use_shape in itertools.product((False, True), repeat=3):
        if use_size or use_colour or use_shape:
            out.append(_Desc(o.size if use_size else None, o.colour if use_colour else None,
                             o.shape if use_shape else None))
    return out


def _denotation(desc: _Desc, objects: Sequence[ShapeObject]) -> list[int]:
    return [i for i, o in enumerate(objects) if desc.matches(o)]


def relation_value(rel: str, a: ShapeObject, b: ShapeObject, cfg: ShapesConfig) -> bool | None:
    """Whether ``a`` is ``rel`` ``b``: True (clearly), False (clearly not) or None (unclear).

    Directional relations need the displacement along the axis to exceed the margin and to
    be at least 1.3 times that along the other axis (within about 37 degrees of the axis);
    they are clearly false below half the margin or beyond about 63 degrees (the other
    axis more than twice as large). "next to" compares the gap between bounding circles
    with ``near_distance`` (true below it, false beyond twice it).
    """
    s = cfg.image_size
    (ax, ay), (bx, by) = a.center, b.center
    if rel == "next to":
        gap = math.hypot(ax - bx, ay - by) - a.radius - b.radius
        near = cfg.near_distance * s
        if gap <= near:
            return True
        if gap >= 2 * near:
            return False
        return None
    if rel == "left of":
        d, other = bx - ax, abs(ay - by)
    elif rel == "right of":
        d, other = ax - bx, abs(ay - by)
    elif rel == "above":
        d, other = by - ay, abs(ax - bx)
    elif rel == "below":
        d, other = ay - by, abs(ax - bx)
    else:
        raise ValueError(f"unknown relation {rel!r}")
    m = cfg.relation_margin * s
    if d > m and d >= 1.3 * other:
        return True
    if d <= m / 2 or d < other / 2:
        return False
    return None


def extreme_value(where: str, t: int, cands: Sequence[int], objects: Sequence[ShapeObject],
                  margin: float) -> bool | None:
    """Whether ``t`` is the left/right/top/bottom-most of ``cands``: True by at least
    ``margin`` px, False when another is more extreme by at least ``margin``, None in
    between; a lone candidate is the extreme."""
    axis = 0 if where in ("left", "right") else 1
    sign = 1.0 if where in ("left", "top") else -1.0
    key = sign * objects[t].center[axis]
    others = [sign * objects[c].center[axis] for c in cands if c != t]
    if not others or key + margin <= min(others):
        return True
    if key >= min(others) + margin:
        return False
    return None


def _is_extreme(where: str, t: int, cands: Sequence[int], objects: Sequence[ShapeObject],
                margin: float) -> bool:
    """``t`` is clearly the left/right/top/bottom-most of ``cands`` (by ``margin`` px),
    among at least two."""
    return (any(c != t for c in cands)
            and extreme_value(where, t, cands, objects, margin) is True)


# --------------------------------------------------------------------------------------
# Expression generation


def _choose(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _article(rng: np.random.Generator, np_text: str) -> str:
    return np_text if rng.random() < 0.2 else f"the {np_text}"


def _attribute_expr(rng, t, objects, cfg) -> str | None:
    options = [d for d in _descriptors(objects[t]) if _denotation(d, objects) == [t]]
    if not options:
        return None
    return _article(rng, _choose(rng, options).phrase())


def _landmark_descs(o_idx: int, objects) -> list[_Desc]:
    """The shortest unique descriptors of a landmark, naming its shape when possible
    ("the green star" rather than "the green shape")."""
    unique = [d for d in _descriptors(objects[o_idx]) if _denotation(d, objects) == [o_idx]]
    named = [d for d in unique if d.shape is not None]
    pool = named or unique
    if not pool:
        return []
    shortest = min(d.length for d in pool)
    return [d for d in pool if d.length == shortest]


def _pick_np(rng, options: list[tuple]) -> tuple:
    """Pick an option whose first item is a descriptor; those naming a shape are twice as
    likely (so "the small shape left of ..." stays the exception)."""
    w = np.array([2.0 if o[0].shape is not None else 1.0 for o in options])
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def _relation_expr(rng, t, objects, cfg) -> str | None:
    options = []
    landmarks = {i: _landmark_descs(i, objects) for i in range(len(objects)) if i != t}
    for desc in _descriptors(objects[t]):
        den = _denotation(desc, objects)
        for landmark in range(len(objects)):
            if landmark == t:
                continue
            cands = [c for c in den if c != landmark]
            if len(cands) < 2:  # the relation must be needed
                continue
            land_descs = landmarks[landmark]
            if not land_descs:
                continue
            for rel in cfg.relations:
                if relation_value(rel, objects[t], objects[landmark], cfg) is not True:
                    continue
                if all(relation_value(rel, objects[c], objects[landmark], cfg) is False
                       for c in cands if c != t):
                    options.append((desc, rel, landmark, land_descs))
    if not options:
        return None
    desc, rel, _, land_descs = _pick_np(rng, options)
    words = _choose(rng, _RELATION_WORDS[rel])
    return f"{_article(rng, desc.phrase())} {words} the {_choose(rng, land_descs).phrase()}"


def _location_expr(rng, t, objects, cfg) -> str | None:
    margin = cfg.relation_margin * cfg.image_size
    options = []
    for desc in _descriptors(objects[t]):
        den = _denotation(desc, objects)
        if len(den) < 2:
            continue
        for where in LOCATIONS:
            if _is_extreme(where, t, den, objects, margin):
                options.append((desc, where))
    if not options:
        return None
    desc, where = _pick_np(rng, options)
    return _choose(rng, _LOCATION_TEMPLATES[where]).format(np=desc.phrase())


def _negation_expr(rng, t, objects, cfg) -> str | None:
    o = objects[t]
    options = []
    # "the circle that is not red" / "the circle that is not small"
    for attr in ("colour", "size"):
        values = cfg.colours if attr == "colour" else SIZES
        for v in values:
            if v == getattr(o, attr):
                continue
            den = [i for i, x in enumerate(objects) if x.shape == o.shape and getattr(x, attr) != v]
            excluded = [x for x in objects if x.shape == o.shape and getattr(x, attr) == v]
            if den == [t] and excluded:
                options.append(f"the {o.shape} that is not {v}")
    # "the red shape that is not a circle"
    for s in cfg.shapes:
        if s == o.shape:
            continue
        den = [i for i, x in enumerate(objects) if x.colour == o.colour and x.shape != s]
        excluded = [x for x in objects if x.colour == o.colour and x.shape == s]
        if den == [t] and excluded:
            options.append(f"the {o.colour} shape that is not a {s}")
    return _choose(rng, options) if options else None


_MAKERS = {
    "attribute": _attribute_expr,
    "relation": _relation_expr,
    "location": _location_expr,
    "negation": _negation_expr,
}


def _kind_order(rng: np.random.Generator, weights: dict[str, float]) -> list[str]:
    """Kinds in a weighted random order without replacement (first = the sampled kind)."""
    kinds = list(weights)
    w = np.array([weights[k] for k in kinds], dtype=np.float64)
    order = []
    while kinds:
        i = int(rng.choice(len(kinds), p=w / w.sum()))
        order.append(kinds.pop(i))
        w = np.delete(w, i)
    return order


def _expression_for(rng, t, objects, cfg, exclude: set[str]) -> Expression | None:
    for kind in _kind_order(rng, cfg.weights):
        text = _MAKERS[kind](rng, t, objects, cfg)
        if text is not None and text not in exclude:
            return Expression(text, t, kind)
    return None

