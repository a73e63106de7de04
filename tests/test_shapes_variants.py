"""Rendering variants of Shapes-Ref and the held-out drawings split.

The benchmark's fixed splits must not change when rendering options are added: their
sha256 digests below were computed from the generator before those options existed.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from wsris.data.shapes import ShapesRef, variant_config
from wsris.data.shapes_grammar import DRAWINGS, VARIANTS, ShapesConfig
from wsris.data.shapes_render import canvas_of
from wsris.data.spec import open_dataset
from wsris.errors import InvalidInputError

# sha256 over scenes 0..n-1 (image bytes and shape, packed masks, object attributes and
# expressions), computed on the generator before the rendering variants were added.
FIXED_SPLITS = {
    ("val", 200): "4f9c9c001721b5a90e20792eb3756f9d3f553f24f123289af525b05668c0d139",
    ("test", 200): "276ce37f33d7758fb5c02083aad5ba51cf3baa2d090a31a89e7408529f5aa616",
    ("compositional", 200):
        "e037fb7c1fbc1c776bac17170b2ae55093f550c6851694096fabcd026bb03c68",
    ("val", 1000): "ae04ee8ed3361cac2e5e473082cc0119def3f55f42062935ff81fb4c88359d6d",
    ("test", 1000): "03deea9c45f8bb5f15882f3eec29e4eef0ba12e19032ca2ec17cd58c74a67b29",
    ("compositional", 1000):
        "56da087eab11586d962da23b0fa5c268d7e11715e75f91ebfaeda55d86527c7f",
}


def split_digest(split: str, n: int) -> str:
    h = hashlib.sha256()
    ds = ShapesRef(split)
    for i in range(n):
        s = ds[i]
        h.update(s.image.tobytes())
        h.update(str(s.image.shape).encode())
        for o in s.objects:
            h.update(np.packbits(o.mask).tobytes())
            h.update(json.dumps([o.shape, o.colour, o.size, list(o.center), o.radius,
                                 list(o.bbox), list(o.rgb)]).encode())
        for e in s.expressions:
            h.update(json.dumps([e.text, e.target, e.kind]).encode())
    return h.hexdigest()


@pytest.mark.parametrize("split", ["val", "test", "compositional"])
def test_fixed_splits_are_byte_identical(split):
    assert split_digest(split, 200) == FIXED_SPLITS[(split, 200)]


@pytest.mark.slow
@pytest.mark.parametrize("split", ["val", "test", "compositional"])
def test_fixed_splits_are_byte_identical_whole(split):
    assert split_digest(split, 1000) == FIXED_SPLITS[(split, 1000)]


def _scenes(split: str, variant: str, n: int):
    ds = ShapesRef(split, variant=variant)
    return [ds[i] for i in range(n)]


def test_drawn_variant_covers_the_rendering_choices():
    scenes = _scenes("train", "drawn", 60)
    shapes = {s.image.shape[:2] for s in scenes}
    ratios = {round(w / h, 2) for h, w in shapes}
    assert any(r < 1 for r in ratios) and any(r > 1.7 for r in ratios) and 1.0 in ratios
    counts = {len(s.objects) for s in scenes}
    assert max(counts) > 6  # more objects than the benchmark's 2-6
    corners = [tuple(s.image[0, 0]) for s in scenes]
    assert (255, 255, 255) in corners and (0, 0, 0) in corners  # plain white and black
    for s in scenes[:20]:
        h, w = s.image.shape[:2]
        for o in s.objects:
            assert o.mask.shape == (h, w)
        union = np.zeros((h, w), int)
        for o in s.objects:
            union += o.mask
        assert union.max() <= 1  # masks stay disjoint


def test_antialiased_edges_blend_and_masks_hold_the_majority_of_coverage():
    cfg = variant_config("drawn").replace(outline_probability=0.0, noise_sigma=(0.0, 0.0),
                                          backgrounds=("plain",),
                                          plain_colours=((0, 0, 0),))
    s = ShapesRef("train", config=cfg)[3]
    o = s.objects[0]
    inside = s.image[o.mask]
    # every masked pixel is at least half the object's colour over black
    assert (inside.astype(int).sum(1) >= 0.45 * sum(o.rgb)).all()
    edge = ~o.mask & (s.image.astype(int).sum(2) > 0)
    assert edge.any()  # partial coverage outside the mask: anti-aliased, not binary


def test_outlines_lie_inside_the_masks():
    cfg = variant_config("drawn").replace(outline_probability=1.0, noise_sigma=(0.0, 0.0),
                                          outline_styles=("dark",),
                                          backgrounds=("plain",),
                                          plain_colours=((255, 255, 255),))
    s = ShapesRef("train", config=cfg)[0]
    dark = (s.image == 20).all(axis=2)
    union = np.any([o.mask for o in s.objects], axis=0)
    assert dark.any() and not (dark & ~union).any()


def test_drawings_split_uses_choices_no_training_variant_uses():
    train_values = {k: {v.get(k) for v in VARIANTS.values()} | {getattr(ShapesConfig(), k)}
                    for k in ("canvas_sizes", "plain_colours", "outline_width")}
    train_sizes = {c for sizes in train_values["canvas_sizes"] if sizes for c in sizes}
    train_colours = {c for cols in train_values["plain_colours"] if cols for c in cols}
    assert not set(DRAWINGS["canvas_sizes"]) & train_sizes
    assert not set(DRAWINGS["plain_colours"]) & train_colours
    assert all(DRAWINGS["outline_width"][0] > w[1] for w in train_values["outline_width"]
               if w)
    assert all("grey" not in v.get("outline_styles", ("dark", "shade"))
               for v in VARIANTS.values())


def test_drawings_split_is_fixed_and_named():
    data = open_dataset("shapes:drawings")
    assert data.name == "shapes:drawings" and len(data) == 2000
    a, b = ShapesRef("drawings")[5], ShapesRef("drawings")[5]
    assert np.array_equal(a.image, b.image)
    assert a.image.shape[:2][::-1] in DRAWINGS["canvas_sizes"]
    assert canvas_of(variant_config(split="drawings")) == DRAWINGS["canvas_sizes"][0]


def test_rendering_options_are_checked():
    with pytest.raises(InvalidInputError, match="plain_colours"):
        ShapesConfig(backgrounds=("plain",))
    with pytest.raises(InvalidInputError, match="background"):
        ShapesConfig(backgrounds=("stripes",))
    with pytest.raises(InvalidInputError, match="canvas"):
        ShapesConfig(canvas_sizes=((16, 100),))
    with pytest.raises(InvalidInputError, match="outline"):
        ShapesConfig(outline_styles=("dotted",))


def test_cache_of_a_variant_with_varying_sizes_reads_back_the_same_scenes(tmp_path):
    from wsris.data.shapes_cache import CachedShapes, write_shapes_cache

    write_shapes_cache(tmp_path / "c", "train", 8, variant="drawn")
    cached, live = CachedShapes(tmp_path / "c"), ShapesRef("train", variant="drawn")
    assert len({cached[i].image.shape for i in range(8)}) > 1
    for i in range(8):
        a, b = cached[i], live[i]
        assert np.array_equal(a.image, b.image) and np.array_equal(cached.image(i), b.image)
        assert [e.text for e in a.expressions] == [e.text for e in b.expressions]
        for x, y in zip(a.objects, b.objects, strict=True):
            assert np.array_equal(x.mask, y.mask) and x.rgb == y.rgb
