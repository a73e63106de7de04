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
"""

from __future__ import annotations

import colorsys
import dataclasses
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DatasetError, InvalidInputError
from .base import RefSample
from .masks import mask_bbox

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
SPLITS: dict[str, int] = {"train": 1, "val": 2, "test": 3, "compositional": 4}
SIZES: tuple[str, ...] = ("small", "large")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to")
LOCATIONS: tuple[str, ...] = ("left", "right", "top", "bottom")

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

# Circumradius of each shape as a multiple of its nominal diameter d, chosen so the
# shapes have similar areas (circle 0.79 d^2, square 0.81, hexagon 0.73, star/triangle
# about 0.55-0.6).
_CIRCUMRADIUS: dict[str, float] = {
    "circle": 0.5, "square": 0.45 * math.sqrt(2), "triangle": 0.66, "star": 0.64,
    "hexagon": 0.53, "diamond": 0.6, "pentagon": 0.55,
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
    )

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
}


def variant_config(variant: str = "default", **overrides: Any) -> ShapesConfig:
    """The configuration of a named variant, with optional field overrides."""
    if variant not in VARIANTS:
        raise InvalidInputError(
            f"unknown Shapes-Ref variant {variant!r}; known: {', '.join(VARIANTS)}"
        )
    return ShapesConfig(**{**VARIANTS[variant], **overrides})


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


@dataclass
class ShapesSample:
    """One scene: image, objects and expressions."""

    image: np.ndarray  # HxWx3 uint8
    objects: list[ShapeObject]
    expressions: list[Expression]
    split: str
    index: int
    seed: int
    variant: str = "default"

    def target_mask(self, expression: int) -> np.ndarray:
        return self.objects[self.expressions[expression].target].mask

    def to_dict(self) -> dict[str, Any]:
        """Plain types (arrays kept), e.g. for a DataLoader ``collate_fn``."""
        return {
            "image": self.image,
            "masks": np.stack([o.mask for o in self.objects]),
            "objects": [
                {k: getattr(o, k) for k in ("shape", "colour", "size", "center", "radius",
                                            "bbox")}
                for o in self.objects
            ],
            "expressions": [dataclasses.asdict(e) for e in self.expressions],
            "split": self.split, "index": self.index, "seed": self.seed,
        }


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


def _is_extreme(where: str, t: int, cands: Sequence[int], objects: Sequence[ShapeObject],
                margin: float) -> bool:
    """``t`` is clearly the left/right/top/bottom-most of ``cands`` (by ``margin`` px)."""
    axis = 0 if where in ("left", "right") else 1
    sign = 1.0 if where in ("left", "top") else -1.0
    key = sign * objects[t].center[axis]
    others = [sign * objects[c].center[axis] for c in cands if c != t]
    return bool(others) and key + margin <= min(others)


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


# --------------------------------------------------------------------------------------
# Rendering


def _polygon(shape: str, cx: float, cy: float, d: float, angle: float) -> np.ndarray | None:
    """Vertices of ``shape`` (None for a circle), nominal diameter ``d``, rotated."""
    r = _CIRCUMRADIUS[shape] * d
    if shape == "circle":
        return None
    if shape == "square":
        base = np.deg2rad([45, 135, 225, 315])
        radii = np.full(4, r)
    elif shape == "diamond":
        base = np.deg2rad([0, 90, 180, 270])
        radii = np.array([r, 0.75 * r, r, 0.75 * r])
    elif shape == "triangle":
        base = np.deg2rad([-90, 30, 150])
        radii = np.full(3, r)
    elif shape == "pentagon":
        base = np.deg2rad(-90 + 72 * np.arange(5))
        radii = np.full(5, r)
    elif shape == "hexagon":
        base = np.deg2rad(60 * np.arange(6))
        radii = np.full(6, r)
    elif shape == "star":
        base = np.deg2rad(-90 + 36 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, r, 0.48 * r)
    else:
        raise ValueError(shape)
    theta = base + angle
    # Image y points down: a positive sine moves a vertex down.
    return np.stack([cx + radii * np.cos(theta), cy + radii * np.sin(theta)], axis=1)


_SHIFT = 4  # sub-pixel bits for OpenCV drawing


def _shape_mask(shape: str, cx: float, cy: float, d: float, angle: float, size: int
                ) -> np.ndarray:
    import cv2  # here, not at import: the text side imports this module for its words

    canvas = np.zeros((size, size), dtype=np.uint8)
    k = 1 << _SHIFT
    # OpenCV puts pixel centres on integer coordinates; ours are at +0.5.
    if shape == "circle":
        center = (int(round((cx - 0.5) * k)), int(round((cy - 0.5) * k)))
        cv2.circle(canvas, center, int(round(0.5 * d * k)), 1, -1, cv2.LINE_8, _SHIFT)
    else:
        pts = _polygon(shape, cx, cy, d, angle)
        pts = np.round((pts - 0.5) * k).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 1, cv2.LINE_8, _SHIFT)
    return canvas.astype(bool)


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.2, 0.65)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _background(rng: np.random.Generator, cfg: ShapesConfig) -> np.ndarray:
    import cv2  # here, not at import: the text side imports this module for its words

    n = cfg.image_size
    c1, c2 = _muted_colour(rng), _muted_colour(rng)
    kind = int(rng.integers(3))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / max(n - 1, 1)
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
    elif kind == 1:  # radial gradient
        px, py = rng.random(2)
        t = np.hypot(xx - px, yy - py)
    else:  # smooth noise
        g = int(rng.integers(3, 8))
        small = rng.random((g, g)).astype(np.float32)
        t = cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]
    # Low-frequency texture.
    g = int(rng.integers(6, 17))
    tex = cv2.resize(rng.standard_normal((g, g)).astype(np.float32), (n, n),
                     interpolation=cv2.INTER_LINEAR)
    img += tex[..., None] * rng.uniform(0, 12)
    if rng.random() < cfg.clutter_probability:  # thin lines and dots in muted colours
        img = np.ascontiguousarray(np.clip(img, 0, 255))
        for _ in range(int(rng.integers(3, 13))):
            colour = tuple(float(c) for c in _muted_colour(rng))
            if rng.random() < 0.5:
                p1 = tuple(int(v) for v in rng.integers(0, n, 2))
                p2 = tuple(int(v) for v in rng.integers(0, n, 2))
                cv2.line(img, p1, p2, colour, 1, cv2.LINE_AA)
            else:
                p = tuple(int(v) for v in rng.integers(0, n, 2))
                cv2.circle(img, p, int(rng.integers(1, 3)), colour, -1, cv2.LINE_AA)
    return img


# --------------------------------------------------------------------------------------
# Scene generation


def _pairs(cfg: ShapesConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(allowed, held-out) colour-shape pairs under ``cfg``'s vocabulary."""
    held = [(c, s) for c, s in cfg.heldout_pairs if c in cfg.colours and s in cfg.shapes]
    allowed = [(c, s) for c in cfg.colours for s in cfg.shapes if (c, s) not in held]
    return allowed, held


def _object_specs(rng, cfg: ShapesConfig, split: str, n: int) -> list[tuple[str, str, str]]:
    """(colour, shape, size) of the target (first) and ``n - 1`` distractors."""
    allowed, held = _pairs(cfg)
    if split == "compositional":
        if not held:
            raise InvalidInputError("the compositional split needs held-out pairs in the "
                                    "configured vocabulary")
        target_pool, distractor_pool = held, allowed + held
    else:
        target_pool = distractor_pool = allowed
    tc, ts = _choose(rng, target_pool)
    size = lambda: "large" if rng.random() < cfg.p_large else "small"  # noqa: E731
    specs = [(tc, ts, size())]
    # Distractors sharing the target's shape and (when there is room) its colour.
    wanted = ["shape", "colour"] if n >= 3 else [_choose(rng, ["shape", "colour"])]
    for i in range(n - 1):
        role = wanted[i] if i < len(wanted) else "any"
        if role == "shape":
            pool = [p for p in distractor_pool if p[1] == ts and p[0] != tc]
        elif role == "colour":
            pool = [p for p in distractor_pool if p[0] == tc and p[1] != ts]
        else:
            pool = distractor_pool
        if not pool:
            pool = distractor_pool
        c, s = _choose(rng, pool)
        z = size()
        if (c, s) == (tc, ts):  # never an exact duplicate of the target
            z = "small" if specs[0][2] == "large" else "large"
        specs.append((c, s, z))
    return specs


def _place(rng, cfg: ShapesConfig, radii: Sequence[float]) -> list[tuple[float, float]] | None:
    n = cfg.image_size
    centres: list[tuple[float, float]] = []
    gap = 0.015 * n
    for r in radii:
        lo, hi = r + 1.0, n - r - 1.0
        if hi <= lo:
            return None
        for _ in range(200):
            x, y = rng.uniform(lo, hi, 2)
            if all(math.hypot(x - cx, y - cy) >= (r + cr) * (1 - cfg.max_overlap) + gap
                   for (cx, cy), cr in zip(centres, radii, strict=False)):
                centres.append((float(x), float(y)))
                break
        else:
            return None
    return centres


def _jitter(rng, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Brightness jitter shared by the channels plus a small per-channel one, so a white
    object stays neutral and every colour stays nearest to its own name."""
    j = rng.integers(-12, 13) + rng.integers(-5, 6, 3)
    return tuple(int(v) for v in np.clip(np.array(rgb) + j, 0, 255))


def _render_scene(rng, cfg: ShapesConfig, split: str
                  ) -> tuple[list[ShapeObject], int] | None:
    """Objects with exact masks and the index of the designated target; None when
    placement failed."""
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    specs = _object_specs(rng, cfg, split, n_obj)
    order = rng.permutation(len(specs))
    target = int(np.flatnonzero(order == 0)[0])
    specs = [specs[i] for i in order]
    ranges = {"small": cfg.small_diameter, "large": cfg.large_diameter}
    diam = [rng.uniform(*ranges[z]) * cfg.scale * cfg.image_size for _, _, z in specs]
    radii = [_CIRCUMRADIUS[s] * d for (_, s, _), d in zip(specs, diam, strict=True)]
    centres = _place(rng, cfg, radii)
    if centres is None:
        return None
    raw = []
    for (_, s, _), d, (cx, cy) in zip(specs, diam, centres, strict=True):
        angle = np.deg2rad(rng.uniform(-12, 12))
        if s == "hexagon":  # kept upright: its flat top and bottom tell it from a circle
            angle = 0.0
        raw.append(_shape_mask(s, cx, cy, d, angle, cfg.image_size))
    # Later objects are drawn on top: visible mask = own pixels minus later objects'.
    visible = []
    covered = np.zeros_like(raw[0])
    for m in reversed(raw):
        visible.append(m & ~covered)
        covered |= m
    visible.reverse()
    objects = []
    for (c, s, z), r, ctr, m, full in zip(specs, radii, centres, visible, raw, strict=True):
        if not m.any() or m.sum() < 0.8 * full.sum():
            return None  # too occluded to be referred to
        objects.append(ShapeObject(
            shape=s, colour=c, size=z, center=ctr, radius=float(r), bbox=mask_bbox(m), mask=m,
            rgb=_jitter(rng, COLOURS[c]),
        ))
    return objects, target


def _compose_image(rng, cfg: ShapesConfig, objects: Sequence[ShapeObject]) -> np.ndarray:
    img = _background(rng, cfg)
    for o in objects:
        img[o.mask] = o.rgb
    sigma = rng.uniform(*cfg.noise_sigma)
    img = img + rng.standard_normal(img.shape).astype(np.float32) * sigma
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _rng(split: str, index: int, seed: int) -> np.random.Generator:
    if split not in SPLITS:
        raise InvalidInputError(f"unknown Shapes-Ref split {split!r}; known: {', '.join(SPLITS)}")
    if index < 0:
        raise InvalidInputError(f"index must be non-negative, got {index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], int(index)]))


def generate_sample(split: str, index: int, seed: int = 0,
                    config: ShapesConfig | None = None, variant: str = "default") -> ShapesSample:
    """The Shapes-Ref scene ``(split, index, seed)``: a pure function of its arguments.

    Expression 0 refers to the scene's designated target (a held-out colour-shape pair in
    the compositional split); later expressions to the same or another eligible object.
    Exactly ``config.expressions_per_scene`` distinct expressions are returned.
    """
    cfg = config if config is not None else variant_config(variant)
    rng = _rng(split, index, seed)
    _, held = _pairs(cfg)
    for _attempt in range(100):
        scene = _render_scene(rng, cfg, split)
        if scene is None:
            continue
        # The designated target shares its shape with one distractor and its colour with
        # another, and no other object has all three of its attributes.
        objects, target = scene
        exprs: list[Expression] = []
        first = _expression_for(rng, target, objects, cfg, set())
        if first is None:
            continue
        exprs.append(first)
        if split == "compositional":
            eligible = [i for i, o in enumerate(objects) if (o.colour, o.shape) in held]
        else:
            eligible = list(range(len(objects)))
        ok = True
        while len(exprs) < cfg.expressions_per_scene:
            taken = {e.text for e in exprs}
            t = target if rng.random() < 0.5 else _choose(rng, eligible)
            e = _expression_for(rng, t, objects, cfg, taken)
            if e is None and t != target:
                e = _expression_for(rng, target, objects, cfg, taken)
            if e is None:
                ok = False
                break
            exprs.append(e)
        if not ok:
            continue
        image = _compose_image(rng, cfg, objects)
        return ShapesSample(image=image, objects=objects, expressions=exprs, split=split,
                            index=index, seed=seed, variant=variant)
    raise DatasetError(  # pragma: no cover - only with extreme configurations
        f"could not generate Shapes-Ref scene {split}/{index} (seed {seed}) in 100 attempts; "
        "the configuration is probably too crowded"
    )


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
        self.config = config if config is not None else variant_config(variant, **overrides)
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
        return self.scenes.config.expressions_per_scene

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
