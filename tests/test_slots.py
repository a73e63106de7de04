"""A^slot . A^fuse and the Table 4(b) variants, on hand-computed numbers."""

from __future__ import annotations

import pytest
import torch

from wsris.methods.sag.slots import best_slot_iou, combine_slot_maps, slot_masks, top_entities

# 3 slots on a 2x2 grid; every pixel's column sums to 1 over the slots
A_SLOT = torch.tensor(
    [
        [[0.7, 0.1], [0.2, 0.5]],
        [[0.2, 0.6], [0.3, 0.25]],
        [[0.1, 0.3], [0.5, 0.25]],
    ]
)
A_FUSE = torch.tensor([0.5, 0.3, 0.2])


def test_product_by_hand() -> None:
    got = combine_slot_maps(A_SLOT, A_FUSE, "product")
    # pixel (0,0): .5*.7 + .3*.2 + .2*.1 = .43, and so on
    want = torch.tensor([[0.43, 0.29], [0.29, 0.375]])
    assert got.shape == (2, 2)
    assert torch.allclose(got, want, atol=1e-6)


def test_max_min_avg_by_hand() -> None:
    assert torch.equal(combine_slot_maps(A_SLOT, A_FUSE, "max"), A_SLOT[0])
    assert torch.equal(combine_slot_maps(A_SLOT, A_FUSE, "min"), A_SLOT[2])
    avg = combine_slot_maps(A_SLOT, A_FUSE, "avg")
    # uniform weights over slots whose maps sum to 1 at every pixel: the constant 1/K
    assert torch.allclose(avg, torch.full((2, 2), 1 / 3), atol=1e-6)


def test_several_texts_at_once_and_ties() -> None:
    fuse = torch.stack([A_FUSE, torch.tensor([0.1, 0.1, 0.8])])  # [T=2, K=3]
    prod = combine_slot_maps(A_SLOT, fuse, "product")
    assert prod.shape == (2, 2, 2)
    assert torch.allclose(prod[1], torch.tensor([[0.17, 0.31], [0.45, 0.275]]), atol=1e-6)
    assert torch.allclose(prod[0], combine_slot_maps(A_SLOT, A_FUSE), atol=1e-6)
    assert torch.equal(combine_slot_maps(A_SLOT, fuse, "max")[1], A_SLOT[2])
    # slots 0 and 1 tie for the minimum: the lowest index wins
    assert torch.equal(combine_slot_maps(A_SLOT, fuse, "min")[1], A_SLOT[0])
    # flat [K, N] maps work the same way
    flat = combine_slot_maps(A_SLOT.reshape(3, 4), A_FUSE)
    assert torch.allclose(flat, torch.tensor([0.43, 0.29, 0.29, 0.375]), atol=1e-6)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="combine"):
        combine_slot_maps(A_SLOT, A_FUSE, "median")
    with pytest.raises(ValueError, match="slots"):
        combine_slot_maps(A_SLOT, torch.tensor([0.5, 0.5]))


def test_top_entities() -> None:
    top = top_entities(A_SLOT, torch.tensor([0.2, 0.5, 0.3]), k=2)
    assert [(e.index, round(e.relevance, 6)) for e in top] == [(1, 0.5), (2, 0.3)]
    assert torch.equal(top[0].map, A_SLOT[1])
    assert len(top_entities(A_SLOT, A_FUSE, k=10)) == 3
    with pytest.raises(ValueError):
        top_entities(A_SLOT, A_FUSE[None])


def test_slot_masks_and_best_slot_iou() -> None:
    masks = slot_masks(A_SLOT)
    # arg-max slot per pixel: (0,0)->0, (0,1)->1, (1,0)->2, (1,1)->0 (0.5 > 0.25)
    assert masks.tolist() == [
        [[True, False], [False, True]],
        [[False, True], [False, False]],
        [[False, False], [True, False]],
    ]
    objects = torch.tensor(
        [
            [[True, False], [False, False]],  # half of slot 0 -> IoU 1/2
            [[False, True], [True, False]],  # slot 1 or slot 2 -> IoU 1/2
            [[True, False], [False, True]],  # exactly slot 0 -> IoU 1
        ]
    )
    assert torch.allclose(best_slot_iou(A_SLOT, objects), torch.tensor([0.5, 0.5, 1.0]))
    assert slot_masks(A_SLOT, (8, 8)).shape == (3, 8, 8)
    assert slot_masks(A_SLOT, (8, 8)).sum(0).eq(1).all()  # a partition of the pixels


def test_top_entities_figure() -> None:
    import numpy as np

    from wsris.methods.sag.slots import top_entities_figure

    image = np.full((6, 4, 3), 100, dtype=np.uint8)
    strip, ents = top_entities_figure(image, A_SLOT, torch.tensor([0.2, 0.5, 0.3]), k=3)
    assert strip.shape == (6, 16, 3) and strip.dtype == np.uint8
    assert [e.index for e in ents] == [1, 2, 0]
    assert np.array_equal(strip[:, :4], image)  # the image itself comes first
    # slot 1 is strongest at the top right (0.6) and weakest at the bottom right (0.25):
    # hot (red) there, cold (blue) at its minimum
    panel = strip[:, 4:8].astype(int)
    assert panel[0, 3, 0] > panel[0, 3, 2] and panel[5, 3, 2] > panel[5, 3, 0]
