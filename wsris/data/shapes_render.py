"""Shapes-Ref's renderer: shapes, backgrounds and whole scenes, one pure function of
``(split, index, seed)`` and the configuration (:func:`generate_sample`).

The vocabulary and expression generation are in :mod:`wsris.data.shapes_grammar`.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DatasetError, InvalidInputError
from .masks import mask_bbox
from .shapes_grammar import (
    COLOURS,
    SPLITS,
    Expression,
    ShapeObject,
    ShapesConfig,
    _choose,
    _expression_for,
    variant_config,
)

# Circumradius of each shape as a multiple of its nominal diameter d, chosen so the
# shapes have similar areas (circle 0.79 d^2, square 0.81, hexagon 0.73, star/triangle
# about 0.55-0.6).
_CIRCUMRADIUS: dict[str, float] = {
    "circle": 0.5, "square": 0.45 * math.sqrt(2), "triangle": 0.66, "star": 0.64,
    "hexagon": 0.53, "diamond": 0.6, "pentagon": 0.55,
}


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


def _shape_mask(shape: str, cx: float, cy: float, d: float, angle: float,
                canvas: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """The shape's pixels on a ``(width, height)`` canvas: a bool mask, or with
    ``antialias`` its coverage in [0, 1] (float32)."""
    import cv2  # here, not at import: the text side imports this module for its words

    width, height = canvas
    canvas_ = np.zeros((height, width), dtype=np.uint8)
    k = 1 << _SHIFT
    line, value = (cv2.LINE_AA, 255) if antialias else (cv2.LINE_8, 1)
    # OpenCV puts pixel centres on integer coordinates; ours are at +0.5.
    if shape == "circle":
        center = (int(round((cx - 0.5) * k)), int(round((cy - 0.5) * k)))
        cv2.circle(canvas_, center, int(round(0.5 * d * k)), value, -1, line, _SHIFT)
    else:
        pts = _polygon(shape, cx, cy, d, angle)
        pts = np.round((pts - 0.5) * k).astype(np.int32)
        cv2.fillPoly(canvas_, [pts], value, line, _SHIFT)
    if antialias:
        return canvas_.astype(np.float32) / 255.0
    return canvas_.astype(bool)


def canvas_of(cfg: ShapesConfig) -> tuple[int, int]:
    """(width, height) of a scene rendered under ``cfg`` (a scene's own configuration
    names one canvas; the default is ``image_size`` square)."""
    if cfg.canvas_sizes:
        return cfg.canvas_sizes[0]
    return cfg.image_size, cfg.image_size


def _scene_config(rng: np.random.Generator, cfg: ShapesConfig) -> ShapesConfig:
    """The configuration of one scene: its canvas and object scale drawn where ``cfg``
    gives choices (no draw, and ``cfg`` itself, for the benchmark's configuration)."""
    changes: dict[str, Any] = {}
    if cfg.canvas_sizes:
        w, h = _choose(rng, cfg.canvas_sizes)
        changes.update(canvas_sizes=((int(w), int(h)),), image_size=int(min(w, h)))
    if cfg.scale_range is not None:
        changes.update(scale=cfg.scale * float(rng.uniform(*cfg.scale_range)),
                       scale_range=None)
    return cfg.replace(**changes) if changes else cfg


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.2, 0.65)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _background(rng: np.random.Generator, cfg: ShapesConfig) -> np.ndarray:
    style = _choose(rng, cfg.backgrounds) if len(cfg.backgrounds) > 1 else cfg.backgrounds[0]
    if style == "textured":
        return _textured_background(rng, cfg)
    width, height = canvas_of(cfg)
    c1 = np.array(_choose(rng, cfg.plain_colours), dtype=np.float32)
    if style == "plain":
        return np.broadcast_to(c1, (height, width, 3)).copy()
    c2 = np.array(_choose(rng, cfg.plain_colours), dtype=np.float32)
    c2 = c1 + (c2 - c1) * rng.uniform(0.2, 0.6)  # a gentle blend towards another colour
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / max(height - 1, 1), xx / max(width - 1, 1)
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
    else:
        px, py = rng.random(2)
        t = np.hypot(xx - px, yy - py)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]


def _textured_background(rng: np.random.Generator, cfg: ShapesConfig) -> np.ndarray:
    import cv2  # here, not at import: the text side imports this module for its words

    width, height = canvas_of(cfg)
    c1, c2 = _muted_colour(rng), _muted_colour(rng)
    kind = int(rng.integers(3))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / max(height - 1, 1), xx / max(width - 1, 1)
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
    elif kind == 1:  # radial gradient
        px, py = rng.random(2)
        t = np.hypot(xx - px, yy - py)
    else:  # smooth noise
        g = int(rng.integers(3, 8))
        small = rng.random((g, g)).astype(np.float32)
        t = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]
    # Low-frequency texture.
    g = int(rng.integers(6, 17))
    tex = cv2.resize(rng.standard_normal((g, g)).astype(np.float32), (width, height),
                     interpolation=cv2.INTER_LINEAR)
    img += tex[..., None] * rng.uniform(0, 12)
    if rng.random() < cfg.clutter_probability:  # thin lines and dots in muted colours
        img = np.ascontiguousarray(np.clip(img, 0, 255))
        for _ in range(int(rng.integers(3, 13))):
            colour = tuple(float(c) for c in _muted_colour(rng))
            if rng.random() < 0.5:
                p1 = _point(rng, width, height)
                p2 = _point(rng, width, height)
                cv2.line(img, p1, p2, colour, 1, cv2.LINE_AA)
            else:
                p = _point(rng, width, height)
                cv2.circle(img, p, int(rng.integers(1, 3)), colour, -1, cv2.LINE_AA)
    return img


def _point(rng: np.random.Generator, width: int, height: int) -> tuple[int, int]:
    if width == height:  # one draw of two, as the benchmark's splits were rendered
        return tuple(int(v) for v in rng.integers(0, width, 2))  # type: ignore[return-value]
    return int(rng.integers(0, width)), int(rng.integers(0, height))


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
    width, height = canvas_of(cfg)
    centres: list[tuple[float, float]] = []
    gap = 0.015 * cfg.image_size
    for r in radii:
        lo = r + 1.0
        hi_x, hi_y = width - r - 1.0, height - r - 1.0
        if min(hi_x, hi_y) <= lo:
            return None
        for _ in range(200):
            if width == height:  # one draw of two, as the benchmark's splits were rendered
                x, y = rng.uniform(lo, hi_x, 2)
            else:
                x, y = rng.uniform((lo, lo), (hi_x, hi_y))
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
                  ) -> tuple[list[ShapeObject], int, list[np.ndarray] | None] | None:
    """Objects with exact masks, the index of the designated target and (anti-aliased
    rendering only) each object's coverage; None when placement failed."""
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
    coverage: list[np.ndarray] | None = [] if cfg.antialias else None
    for (_, s, _), d, (cx, cy) in zip(specs, diam, centres, strict=True):
        angle = np.deg2rad(rng.uniform(-12, 12))
        if s == "hexagon":  # kept upright: its flat top and bottom tell it from a circle
            angle = 0.0
        drawn = _shape_mask(s, cx, cy, d, angle, canvas_of(cfg), cfg.antialias)
        if coverage is not None:
            coverage.append(drawn)
            drawn = drawn > 0.5
        raw.append(drawn)
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
    return objects, target, coverage


def _compose_image(rng, cfg: ShapesConfig, objects: Sequence[ShapeObject],
                   coverage: Sequence[np.ndarray] | None = None) -> np.ndarray:
    img = _background(rng, cfg)
    outline = _outline(rng, cfg)
    background = img.reshape(-1, 3).mean(axis=0)
    for k, o in enumerate(objects):
        if coverage is None:
            img[o.mask] = o.rgb
        else:  # blend the edges; pixels under later objects are painted over by them
            a = coverage[k][..., None]
            img = img * (1 - a) + np.asarray(o.rgb, np.float32) * a
        low_contrast = (cfg.outline_probability > 0 and "plain" in cfg.backgrounds
                        and np.abs(np.asarray(o.rgb) - background).max() < 60)
        if outline is not None or low_contrast:
            style, width = outline or ("dark", _outline_width(cfg))
            # at most a fifth of the object's circumradius, so small shapes keep their fill
            ring = o.mask & ~_eroded(o.mask, max(1, min(width, int(0.2 * o.radius))))
            img[ring] = _outline_colour(style, o.rgb)
    sigma = rng.uniform(*cfg.noise_sigma)
    img = img + rng.standard_normal(img.shape).astype(np.float32) * sigma
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _outline_width(cfg: ShapesConfig) -> int:
    return max(1, int(round(float(np.mean(cfg.outline_width)) * cfg.image_size)))


def _outline(rng, cfg: ShapesConfig) -> tuple[str, int] | None:
    """This scene's outline (colour style, width in px), or None; no draw when outlines
    are off."""
    if cfg.outline_probability <= 0 or rng.random() >= cfg.outline_probability:
        return None
    style = _choose(rng, cfg.outline_styles)
    width = max(1, int(round(rng.uniform(*cfg.outline_width) * cfg.image_size)))
    return style, width


def _outline_colour(style: str, rgb: Sequence[int]) -> tuple[int, int, int]:
    if style == "dark":
        return (20, 20, 20)
    if style == "grey":
        return (128, 128, 128)
    return tuple(int(v * 0.55) for v in rgb)  # type: ignore[return-value]


def _eroded(mask: np.ndarray, width: int) -> np.ndarray:
    import cv2  # here, not at import: the text side imports this module for its words

    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), kernel, borderValue=0).astype(bool)


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
    base = config if config is not None else variant_config(variant, split=split)
    rng = _rng(split, index, seed)
    _, held = _pairs(base)
    for _attempt in range(100):
        cfg = _scene_config(rng, base)
        scene = _render_scene(rng, cfg, split)
        if scene is None:
            continue
        # The designated target shares its shape with one distractor and its colour with
        # another, and no other object has all three of its attributes.
        objects, target, coverage = scene
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
        image = _compose_image(rng, cfg, objects, coverage)
        return ShapesSample(image=image, objects=objects, expressions=exprs, split=split,
                            index=index, seed=seed, variant=variant)
    raise DatasetError(  # pragma: no cover - only with extreme configurations
        f"could not generate Shapes-Ref scene {split}/{index} (seed {seed}) in 100 attempts; "
        "the configuration is probably too crowded"
    )

