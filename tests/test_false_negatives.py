"""Shapes-Ref ITM negatives that are true of the image are left out of the sampling."""

from __future__ import annotations

from types import SimpleNamespace as Obj

import pytest
import torch
from chunk_helpers import tiny_chunk_objective

from wsris.training.false_negatives import (
    describable,
    drop_describable,
    head_attributes,
    may_describe,
    scene_index,
)

RED_CIRCLE = Obj(size="large", colour="red", shape="circle")
BLUE_SQUARE = Obj(size="small", colour="blue", shape="square")


def test_head_phrase_stops_at_the_first_relation_location_or_that():
    assert head_attributes("the red circle left of the blue square") == (set(), {"red"}, {"circle"})
    assert head_attributes("the small shape that is not red") == ({"small"}, set(), set())
    assert head_attributes("the leftmost circle") == (set(), set(), {"circle"})
    assert head_attributes("the hexagon at the top") == (set(), set(), {"hexagon"})


def test_may_describe_needs_one_object_with_every_head_attribute():
    scene = [RED_CIRCLE, BLUE_SQUARE]
    assert may_describe("the red circle", scene)
    assert may_describe("the red shape", scene)
    assert may_describe("the circle below the green star", scene)  # the relation is not checked
    assert not may_describe("the blue circle", scene)  # blue and circle, but not one object
    assert not may_describe("the small red shape", scene)
    assert not may_describe("a green star", scene)


def test_describable_matrix_and_dropped_weights():
    texts = ["the red circle", "the blue square", "the green star"]
    scenes = [[RED_CIRCLE], [BLUE_SQUARE, RED_CIRCLE]]
    possible = describable(texts, scenes)
    assert possible.tolist() == [[True, True], [False, True], [False, False]]
    image_index = torch.tensor([0, 1, 1])
    w_img, w_txt = drop_describable(torch.ones(3, 2), torch.ones(3, 3), possible, image_index)
    assert w_img.tolist() == [[0, 0], [1, 0], [1, 1]]
    # negative text u for the image of text t: u must not fit image_index[t]
    assert w_txt.tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 1]]


def _at(colour: str, shape: str, x: float, y: float = 64.0, size: str = "small") -> Obj:
    return Obj(size=size, colour=colour, shape=shape, center=(x, y), radius=8.0)


def test_semantic_rule_keeps_negatives_the_head_rule_drops():
    from wsris.data.shapes import ShapesRef

    config = ShapesRef("val").config  # relation margin 0.06 x 128 px
    circle_left = [_at("red", "circle", 20), _at("blue", "square", 100)]
    circle_right = [_at("red", "circle", 100), _at("blue", "square", 20)]
    blue_circle = [_at("blue", "circle", 60)]
    texts = ["the circle left of the square", "the circle that is not red", "the red circle"]
    scenes = [circle_left, circle_right, blue_circle]
    head = describable(texts, scenes)
    semantic = describable(texts, scenes, "semantic", config)
    # the head rule: each text's head phrase ("circle", "circle", "red circle") fits
    assert head.tolist() == [[True, True, True], [True, True, True], [True, True, False]]
    # the whole expression: the relation is false where the circle is on the right, and
    # with no square in the scene; "not red" is false of a scene whose only circle is red
    assert semantic.tolist() == [[True, False, False], [False, False, True],
                                 [True, True, False]]
    # a borderline relation (the grammar's dead zone) is left open: not a negative
    near = [_at("red", "circle", 60), _at("blue", "square", 64)]
    assert describable(texts[:1], [near], "semantic", config).tolist() == [[True]]
    with pytest.raises(ValueError, match="needs the scenes"):
        describable(texts, scenes, "semantic")
    with pytest.raises(ValueError, match="unknown false-negative rule"):
        describable(texts, scenes, "whole")


def test_scene_index_reads_shapes_ref_sample_ids_only():
    assert scene_index("train/123/1") == 123
    with pytest.raises(ValueError):
        scene_index("refcoco/val/5")


def test_objective_filters_with_the_scenes_of_its_own_training_data():
    obj, data = tiny_chunk_objective(filter_false_negatives=True)
    samples = [data[i] for i in range(8)]
    batch = obj.collate(samples)
    possible = obj.describable(batch)
    for t in range(len(samples)):
        # a text always fits its own image
        assert possible[t, int(batch.image_index[t])]
    scenes = [data.scene(scene_index(s.sample_id)).objects for s in samples[::data.per_scene]]
    assert torch.equal(possible, describable([s.text for s in samples], scenes))
    out = obj(batch)
    assert torch.isfinite(out["loss"])
    semantic = obj.describable(batch, "semantic")
    assert torch.equal(semantic, describable([s.text for s in samples], scenes, "semantic",
                                             data.config))
    assert not (semantic & ~possible).any()  # true of the image: its head phrase fits too


def test_c3_leaves_excluded_images_out_of_the_softmax_but_never_the_own_image():
    from wsris.methods.sag.losses import c3_loss

    torch.manual_seed(0)
    z, text = torch.randn(3, 2, 4), torch.randn(2, 4)
    index = torch.tensor([0, 1])
    logits = torch.einsum("ijd,jd->ji", z, text)  # [texts, images]
    exclude = torch.tensor([[True, False, True], [False, True, False]])
    got = c3_loss(z, text, image_index=index, exclude=exclude)
    # text 0 keeps images 0 (own) and 1; text 1 keeps 0 and 1 (own) and 2
    want = (-(logits[0, 0] - torch.logsumexp(logits[0, :2], 0))
            - (logits[1, 1] - torch.logsumexp(logits[1], 0))) / 2
    assert torch.isclose(got, want, atol=1e-5)
