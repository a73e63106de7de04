"""Shapes-Ref generator guarantees, checked by an evaluator written independently here."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from wsris.data.shapes import (
    COLOURS,
    ShapesConfig,
    ShapesRef,
    generate_sample,
    variant_config,
)
from wsris.errors import InvalidInputError

CFG = ShapesConfig()
SIZE_RE = "small|large"
COLOUR_RE = "|".join(COLOURS)
SHAPE_RE = "circle|square|triangle|star|hexagon|diamond|pentagon|shape"
NP = rf"(?:({SIZE_RE}) )?(?:({COLOUR_RE}) )?({SHAPE_RE})"
REL = ("to the left of|left of|to the right of|right of|above|below|under|next to|beside")
REL_NAME = {"to the left of": "left", "left of": "left", "to the right of": "right",
            "right of": "right", "above": "above", "below": "below", "under": "below",
            "next to": "near", "beside": "near"}
LOC_PRE = {"leftmost": "left", "rightmost": "right", "topmost": "top", "lowest": "bottom"}
LOC_POST = {"on the left": "left", "on the right": "right", "at the top": "top",
            "at the bottom": "bottom"}


def _np_match(o, size, colour, shape) -> bool:
    return ((size is None or o.size == size) and (colour is None or o.colour == colour)
            and (shape == "shape" or o.shape == shape))


def _rel(name: str, a, b, s: int) -> bool:
    """Crisp reading of a relation, with thresholds BETWEEN the generator's "clearly true"
    and "clearly false" zones, so a correct generator always agrees with it."""
    (ax, ay), (bx, by) = a.center, b.center
    if name == "near":
        return math.hypot(ax - bx, ay - by) - a.radius - b.radius <= 1.5 * CFG.near_distance * s
    d, other = {"left": (bx - ax, abs(ay - by)), "right": (ax - bx, abs(ay - by)),
                "above": (by - ay, abs(ax - bx)), "below": (ay - by, abs(ax - bx))}[name]
    m = CFG.relation_margin * s
    return d > 0.75 * m and d >= 0.9 * other


def _extreme(where: str, cands, objects) -> list[int]:
    axis = 0 if where in ("left", "right") else 1
    sign = 1 if where in ("left", "top") else -1
    keys = {i: sign * objects[i].center[axis] for i in cands}
    best = min(keys.values())
    return [i for i in cands if keys[i] == best]


def referents(text: str, objects, size: int) -> list[int]:
    """The objects ``text`` denotes, by an independent parse of the expression."""
    idx = range(len(objects))
    m = re.fullmatch(rf"the ({SHAPE_RE}) that is not ({COLOUR_RE}|{SIZE_RE})", text)
    if m:
        shape, v = m.groups()
        attr = "size" if v in ("small", "large") else "colour"
        return [i for i in idx if objects[i].shape == shape and getattr(objects[i], attr) != v]
    m = re.fullmatch(rf"the ({COLOUR_RE}) shape that is not a ({SHAPE_RE})", text)
    if m:
        colour, shape = m.groups()
        return [i for i in idx if objects[i].colour == colour and objects[i].shape != shape]
    m = re.fullmatch(rf"the (leftmost|rightmost|topmost|lowest) {NP}", text)
    if m:
        cands = [i for i in idx if _np_match(objects[i], *m.groups()[1:])]
        return _extreme(LOC_PRE[m.group(1)], cands, objects)
    m = re.fullmatch(rf"the {NP} (on the left|on the right|at the top|at the bottom)", text)
    if m:
        cands = [i for i in idx if _np_match(objects[i], *m.groups()[:3])]
        return _extreme(LOC_POST[m.group(4)], cands, objects)
    m = re.fullmatch(rf"(?:the )?{NP} ({REL}) the {NP}", text)
    if m:
        g = m.groups()
        landmarks = [i for i in idx if _np_match(objects[i], *g[4:7])]
        assert len(landmarks) == 1, f"landmark of {text!r} is not unique: {landmarks}"
        (lm,) = landmarks
        return [i for i in idx if i != lm and _np_match(objects[i], *g[:3])
                and _rel(REL_NAME[g[3]], objects[i], objects[lm], size)]
    m = re.fullmatch(rf"(?:the )?{NP}", text)
    if m:
        return [i for i in idx if _np_match(objects[i], *m.groups())]
    raise AssertionError(f"unparseable expression {text!r}")


@pytest.fixture(scope="module")
def val_scenes():
    ds = ShapesRef("val")
    return [ds[i] for i in range(120)]


def test_every_expression_refers_to_exactly_its_target(val_scenes):
    train = ShapesRef("train", seed=7)
    scenes = val_scenes + [train[i] for i in range(60)] + [
        ShapesRef("compositional")[i] for i in range(30)]
    for seed in range(1, 6):  # other seeds and a crowded, relation-heavy configuration
        scenes += [ShapesRef("test", seed=seed)[i] for i in range(12)]
        scenes += [ShapesRef("train", seed=seed, variant="relations", min_objects=5)[i]
                   for i in range(8)]
    kinds = set()
    for sc in scenes:
        assert len(sc.expressions) == CFG.expressions_per_scene
        assert len({e.text for e in sc.expressions}) == len(sc.expressions)
        for e in sc.expressions:
            kinds.add(e.kind)
            assert referents(e.text, sc.objects, CFG.image_size) == [e.target], (
                sc.split, sc.index, e, [(o.colour, o.shape, o.size) for o in sc.objects])
    assert kinds == {"attribute", "relation", "location", "negation"}


def test_masks_exact_disjoint_and_consistent(val_scenes):
    for sc in val_scenes:
        h, w = sc.image.shape[:2]
        assert sc.image.dtype == np.uint8 and sc.image.shape == (128, 128, 3)
        assert 2 <= len(sc.objects) <= 6
        total = np.zeros((h, w), dtype=int)
        for o in sc.objects:
            assert o.mask.shape == (h, w) and o.mask.dtype == bool and o.mask.any()
            ys, xs = np.nonzero(o.mask)
            assert o.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                              ys.max() - ys.min() + 1)
            total += o.mask
            # The pixels of the mask carry the object's colour: their mean is nearest to
            # the declared colour's nominal RGB.
            mean = sc.image[o.mask].mean(axis=0)
            nearest = min(CFG.colours, key=lambda c: np.sum((np.array(COLOURS[c]) - mean) ** 2))
            assert nearest == o.colour
        assert total.max() == 1  # instance masks never overlap
        for j, e in enumerate(sc.expressions):
            assert sc.target_mask(j) is sc.objects[e.target].mask


def test_centres_match_masks_and_sizes_separate(val_scenes):
    small, large = {}, {}
    for sc in val_scenes:
        for o in sc.objects:
            others = [p for p in sc.objects if p is not o]
            x, y, w, h = o.bbox
            isolated = all(x + w <= p.bbox[0] or p.bbox[0] + p.bbox[2] <= x
                           or y + h <= p.bbox[1] or p.bbox[1] + p.bbox[3] <= y for p in others)
            if isolated:  # not occluded: centroid = the declared centre
                ys, xs = np.nonzero(o.mask)
                assert abs(xs.mean() + 0.5 - o.center[0]) < 1.0
                assert abs(ys.mean() + 0.5 - o.center[1]) < 1.0
            (large if o.size == "large" else small).setdefault(o.shape, []).append(o)
    for shape in CFG.shapes:
        assert max(o.area for o in small[shape]) < min(o.area for o in large[shape])
        # A large object spans at least 3 tokens of an 8-px grid in each direction.
        assert min(min(o.bbox[2], o.bbox[3]) for o in large[shape]) >= 24


def test_target_has_distractors_sharing_shape_and_colour(val_scenes):
    for sc in val_scenes:
        t = sc.objects[sc.expressions[0].target]
        same_shape = [o for o in sc.objects if o.shape == t.shape and o.colour != t.colour]
        same_colour = [o for o in sc.objects if o.colour == t.colour and o.shape != t.shape]
        if len(sc.objects) >= 3:
            assert same_shape and same_colour
        else:
            assert same_shape or same_colour


def test_same_split_index_seed_same_sample():
    a = ShapesRef("test")[17]
    b = generate_sample("test", 17, 0)
    assert np.array_equal(a.image, b.image)
    assert [e.text for e in a.expressions] == [e.text for e in b.expressions]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.objects, b.objects, strict=True))
    c = generate_sample("test", 17, 1)
    d = generate_sample("val", 17, 0)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.image, d.image)


def test_benchmark_val_is_pinned():
    """The fixed val split must not drift silently (a change here changes the benchmark)."""
    got = [[(o.colour, o.shape, o.size) for o in ShapesRef("val")[i].objects]
           for i in range(3)]
    texts = [[e.text for e in ShapesRef("val")[i].expressions] for i in range(3)]
    assert got[2] == [("green", "square", "small"), ("red", "square", "large")]
    assert texts[2] == ["the red shape", "the square that is not small"]
    assert got[0] == [("white", "hexagon", "large"), ("white", "circle", "large"),
                      ("cyan", "circle", "large")]
    assert texts[0] == ["large white circle", "the cyan shape"]


def test_compositional_split_holds_out_its_pairs():
    held = set(CFG.heldout_pairs)
    for i in range(40):
        sc = ShapesRef("compositional")[i]
        for e in sc.expressions:
            o = sc.objects[e.target]
            assert (o.colour, o.shape) in held
    for split in ("train", "val", "test"):
        ds = ShapesRef(split)
        for i in range(40):
            for o in ds[i].objects:
                assert (o.colour, o.shape) not in held, (split, i, o.colour, o.shape)


def test_plus_variant_has_no_location_words():
    words = re.compile(r"\b(left|right|top|bottom|above|below|under|leftmost|rightmost|"
                       r"topmost|lowest)\b")
    kinds = set()
    ds = ShapesRef("val", variant="plus")
    for i in range(80):
        for e in ds[i].expressions:
            kinds.add(e.kind)
            assert not words.search(e.text), e.text
    assert "location" not in kinds and {"attribute", "negation"} <= kinds


def test_attribute_curriculum_and_knobs():
    ds = ShapesRef("train", variant="attributes")
    for i in range(30):
        sc = ds[i]
        assert len(sc.objects) <= 4
        assert {e.kind for e in sc.expressions} == {"attribute"}
    small = ShapesRef("val", image_size=96, min_objects=3, max_objects=3)
    sc = small[0]
    assert sc.image.shape == (96, 96, 3) and len(sc.objects) == 3
    assert all(o.mask.shape == (96, 96) for o in sc.objects)
    easy = variant_config("easy")
    assert easy.max_objects == 3 and easy.p_large == 1.0
    assert len(ShapesRef("val")) == 1000 and len(ShapesRef("val").referring()) == 2000


def test_bad_arguments_raise_typed_errors():
    with pytest.raises(InvalidInputError, match="split"):
        ShapesRef("dev")
    with pytest.raises(InvalidInputError, match="variant"):
        ShapesRef("val", variant="hard")
    with pytest.raises(InvalidInputError, match="shape"):
        ShapesConfig(shapes=("circle", "blob"))
    with pytest.raises(IndexError):
        ShapesRef("val", length=3)[3]


def test_referring_view_and_dataloader():
    ref = ShapesRef("val", length=3).referring()
    assert len(ref) == 6 and ref.name == "shapes:val"
    s = ref[3]
    scene = ShapesRef("val")[1]
    assert s.text == scene.expressions[1].text and s.kind == scene.expressions[1].kind
    assert np.array_equal(s.mask, scene.objects[scene.expressions[1].target].mask)
    assert len(s.object_masks) == len(scene.objects)
    assert ref.image_key(2) == ref.image_key(3) == 1

    from torch.utils.data import DataLoader

    loader = DataLoader(ShapesRef("train", length=6), batch_size=3, collate_fn=list)
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3]
    assert batches[1][0].index == 3
    d = batches[0][0].to_dict()
    assert d["masks"].shape == (len(d["objects"]), 128, 128)
