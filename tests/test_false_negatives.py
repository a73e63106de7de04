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
