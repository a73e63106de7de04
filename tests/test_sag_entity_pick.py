"""lab/scripts/sag_entity_pick.py: where a picked entity lands, on a hand-built scene."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from lab.scripts.sag_entity_pick import _landing
from wsris.data.shapes_grammar import ShapeObject


def _square(x: int, y: int) -> np.ndarray:
    mask = np.zeros((16, 16), bool)
    mask[y : y + 4, x : x + 4] = True
    return mask


def _obj(shape: str, colour: str, x: int, y: int) -> ShapeObject:
    return ShapeObject(shape=shape, colour=colour, size="large", center=(x + 2.0, y + 2.0),
                       radius=2.0, bbox=(x, y, 4, 4), mask=_square(x, y), rgb=(0, 0, 0))


def test_landing_names_target_landmark_other_candidate_other_and_background():
    # the target red circle (left), another red circle, the blue square landmark, a star
    objects = [_obj("circle", "red", 0, 0), _obj("circle", "red", 12, 12),
               _obj("square", "blue", 6, 0), _obj("star", "green", 0, 12)]
    scene = SimpleNamespace(objects=objects,
                            expressions=[SimpleNamespace(target=0)])
    text = "the red circle left of the blue square"
    grid = (16, 16)  # the token grid equals the image here

    def picked(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(mask).flatten()

    assert _landing(picked(objects[0].mask), grid, scene, 0, text) == "target"
    assert _landing(picked(objects[2].mask), grid, scene, 0, text) == "landmark"
    assert _landing(picked(objects[1].mask), grid, scene, 0, text) == "other_head"
    assert _landing(picked(objects[3].mask), grid, scene, 0, text) == "other"
    empty = np.zeros((16, 16), bool)
    empty[8, 8] = True  # a token no object covers
    assert _landing(picked(empty), grid, scene, 0, text) == "background"
    # mostly on the landmark, one token on the target: the landmark wins
    both = objects[2].mask.copy()
    both[0, 0] = True
    assert _landing(picked(both), grid, scene, 0, text) == "landmark"
