"""The Shapes-Ref grammar's semantics read back from the text: parsed forms, three-valued
relations and locations, and the dataset's own expressions denoting exactly their target."""

from __future__ import annotations

import pytest

from wsris.data.shapes import ShapeObject, ShapesConfig, ShapesRef
from wsris.data.shapes_grammar import _Desc
from wsris.data.shapes_semantics import denotation, evaluate, parse
from wsris.errors import InvalidInputError
from wsris.training.false_negatives import may_describe

CFG = ShapesConfig()  # 128 px: relation margin 7.68 px, "next to" gap 12.8 px


def obj(shape: str, colour: str, size: str, x: float, y: float, r: float = 10.0) -> ShapeObject:
    return ShapeObject(shape=shape, colour=colour, size=size, center=(x, y), radius=r,
                       bbox=(0, 0, 1, 1), mask=None, rgb=(0, 0, 0))  # type: ignore[arg-type]


#: large red circle (left), small blue circle (right), small green star (top middle),
#: large red square (bottom middle)
SCENE = [
    obj("circle", "red", "large", 20, 30),
    obj("circle", "blue", "small", 108, 30),
    obj("star", "green", "small", 64, 20),
    obj("square", "red", "large", 64, 110),
]


@pytest.mark.parametrize("text, kind, head", [
    ("the small red circle", "attribute", _Desc("small", "red", "circle")),
    ("large shape", "attribute", _Desc("large", None, None)),
    ("the circle left of the green star", "relation", _Desc(None, None, "circle")),
    ("circle to the left of the green star", "relation", _Desc(None, None, "circle")),
    ("the leftmost circle", "location", _Desc(None, None, "circle")),
    ("the red shape at the bottom", "location", _Desc(None, "red", None)),
    ("the circle that is not red", "negation", _Desc(None, None, "circle")),
    ("the red shape that is not a circle", "negation", _Desc(None, "red", None)),
])
def test_parse_forms(text, kind, head):
    p = parse(text)
    assert (p.kind, p.head) == (kind, head)


def test_parse_parts():
    p = parse("the small shape to the right of the large red square")
    assert (p.relation, p.landmark) == ("right of", _Desc("large", "red", "square"))
    assert parse("the star under the red circle").relation == "below"
    assert parse("the circle beside the star").relation == "next to"
    assert parse("the lowest star").location == "bottom"
    assert parse("the circle on the right").location == "right"
    assert parse("the circle that is not small").negated == ("size", "small")
    assert parse("the red shape that is not a star").negated == ("shape", "star")


@pytest.mark.parametrize("text", ["zebra", "the red", "the circle that is not a zebra",
                                  "the circle left of", "the red green circle", ""])
def test_parse_rejects_text_outside_the_grammar(text):
    with pytest.raises(InvalidInputError):
        parse(text)


def test_attribute_and_negation_denotations():
    assert denotation("the circle", SCENE, CFG) == [0, 1]
    assert denotation("the red shape", SCENE, CFG) == [0, 3]
    assert denotation("the blue star", SCENE, CFG) == []
    assert denotation("the circle that is not red", SCENE, CFG) == [1]
    assert denotation("the red shape that is not a circle", SCENE, CFG) == [3]
    assert denotation("the circle that is not small", SCENE, CFG) == [0]


def test_relations_need_their_landmark():
    assert denotation("the circle left of the green star", SCENE, CFG) == [0]
    assert denotation("the circle right of the star", SCENE, CFG) == [1]
    assert denotation("the shape above the red square", SCENE, CFG) == [0, 1, 2]
    assert denotation("the circle below the star", SCENE, CFG) == []  # 10 px down, 44 across
    r = evaluate("the circle left of the purple star", SCENE, CFG)  # no such landmark
    assert r.true == () and r.unclear == () and r.landmarks == ()
    # "the circle": two landmarks, read existentially and flagged
    r = evaluate("the star above the circle", SCENE, CFG)
    assert r.landmarks == (0, 1) and not r.landmark_unique and not r.refers


def test_relation_dead_zone_is_unclear():
    # gap between bounding circles 20 px: between 12.8 (next to) and 25.6 (clearly not)
    scene = [obj("circle", "red", "large", 20, 64), obj("star", "blue", "small", 60, 64)]
    r = evaluate("the circle next to the star", scene, CFG)
    assert r.true == () and r.unclear == (0,) and not r.refers


def test_locations_are_three_valued():
    assert denotation("the leftmost circle", SCENE, CFG) == [0]
    assert denotation("the circle on the right", SCENE, CFG) == [1]
    assert denotation("the lowest large shape", SCENE, CFG) == [3]
    # one star: vacuously the topmost, though the grammar would not say it
    assert denotation("the star at the top", SCENE, CFG) == [2]
    close = [obj("circle", "red", "large", 20, 64), obj("circle", "blue", "small", 25, 30),
             obj("circle", "red", "small", 90, 64)]
    r = evaluate("the leftmost circle", close, CFG)  # 5 px apart, margin 7.68 px
    assert r.true == () and r.unclear == (0, 1)


def test_certainly_false_heads_are_false_of_every_object():
    data = ShapesRef("val", length=60).referring()
    for i in range(len(data)):
        objects = data.scene(i // data.per_scene).objects
        other = data[(i + 7 * data.per_scene) % len(data)].text
        if not may_describe(other, objects):
            r = evaluate(other, objects, data.scenes.config)
            assert r.true == () and r.unclear == (), other


@pytest.mark.parametrize("split, n", [("val", 200), ("train", 100), ("compositional", 50)])
def test_every_expression_denotes_exactly_its_target(split, n):
    """The independent check of the parser: on its own scene an expression of the dataset
    is true of its target (the object whose mask is the sample's) and of nothing else."""
    ds = ShapesRef(split, length=n)
    data = ds.referring()
    for i in range(len(data)):
        s = data[i]
        target = [k for k, m in enumerate(s.object_masks) if (m == s.mask).all()]
        r = evaluate(s.text, data.scene(i // data.per_scene).objects, ds.config)
        assert r.parse.kind == s.kind and r.refers and list(r.true) == target, s.text


@pytest.mark.slow
@pytest.mark.parametrize("split, n", [("val", 1000), ("train", 3000), ("test", 1000),
                                      ("compositional", 1000)])
def test_every_expression_denotes_exactly_its_target_whole_split(split, n):
    test_every_expression_denotes_exactly_its_target(split, n)
