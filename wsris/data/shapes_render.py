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

