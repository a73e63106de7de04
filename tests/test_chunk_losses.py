"""Chunk-consistency losses (Eqs. 3-6) and the box / semi losses on hand-made maps.

Every expected value below is worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsris.methods.chunk.losses import (
    box_loss,
    box_mask,
    chunk_maps,
    closest_region,
    inter_chunk_loss,
    inter_chunk_loss_batch,
    inter_chunk_signs,
    intra_chunk_loss,
    intra_chunk_loss_batch,
    isolated_regions,
    mask_cosine_loss,
    minmax_normalize,
    points_above,
    pool_word_maps,
    semi_loss,
    set_distance,
)


def one_hot_maps(n: int, size: int = 4) -> torch.Tensor:
    """``n`` maps, map ``k`` is 1 at pixel ``k`` (row-major) and 0 elsewhere: disjoint."""
    maps = torch.zeros(n, size, size)
    for k in range(n):
        maps[k].view(-1)[k] = 1.0
    return maps


# --------------------------------------------------------------------------- L_intra


def test_intra_identical_maps_is_zero() -> None:
    base = torch.rand(5, 5) + 0.1
    maps = torch.stack([base, 2.0 * base, 0.5 * base])  # cosine ignores scale
    assert intra_chunk_loss(maps, [[0, 1, 2]]).item() == pytest.approx(0.0, abs=1e-6)


def test_intra_disjoint_maps_is_number_of_pairs() -> None:
    maps = one_hot_maps(6)
    # chunks of 3, 2 and 1 words: 3 + 1 + 0 pairs, each at distance 1
    assert intra_chunk_loss(maps, [[0, 1, 2], [3, 4], [5]]).item() == pytest.approx(4.0)
    # a single one-word chunk has no pair
    assert intra_chunk_loss(maps, [[5]]).item() == 0.0
    assert intra_chunk_loss(maps, []).item() == 0.0


def test_intra_hand_value() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    c = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    maps = torch.stack([a, b, c])
    # cos(a,b) = 1/sqrt2, cos(a,c) = 0, cos(b,c) = 1/sqrt2
    expected = (1 - 1 / math.sqrt(2)) + 1.0 + (1 - 1 / math.sqrt(2))
    assert intra_chunk_loss(maps, [[0, 1, 2]]).item() == pytest.approx(expected, rel=1e-6)


def test_intra_zero_map_is_distance_one_without_gradient() -> None:
    maps = torch.stack([torch.zeros(3, 3), torch.rand(3, 3) + 0.1]).requires_grad_(True)
    loss = intra_chunk_loss(maps, [[0, 1]])
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert torch.isfinite(maps.grad).all()
    assert maps.grad.abs().max().item() == 0.0


def test_intra_gradient_matches_autograd_check() -> None:
    torch.manual_seed(0)
    maps = (torch.rand(3, 3, 3, dtype=torch.float64) + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: intra_chunk_loss(m, [[0, 1, 2]]), (maps,))
    # and the gradient is not trivially zero: the maps are pulled towards each other
    loss = intra_chunk_loss(maps, [[0, 1, 2]])
    loss.backward()
    assert maps.grad.abs().sum().item() > 0


def test_intra_batch_reduction_and_exclusion() -> None:
    maps = torch.stack([one_hot_maps(3), one_hot_maps(3)]).requires_grad_(True)
    chunks = [[[0, 1, 2]], [[0, 1]]]  # 3 pairs and 1 pair
    per = intra_chunk_loss_batch(maps, chunks, reduction="none")
    assert per.tolist() == pytest.approx([3.0, 1.0])
    assert intra_chunk_loss_batch(maps, chunks).item() == pytest.approx(2.0)
    assert intra_chunk_loss_batch(maps, chunks, reduction="sum").item() == pytest.approx(4.0)
    # excluding sample 1 (e.g. a negative caption): it contributes nothing
    loss = intra_chunk_loss_batch(maps, chunks, include=[True, False])
    assert loss.item() == pytest.approx(3.0)  # == sample 0 alone
    loss.backward()
    assert maps.grad[1].abs().max().item() == 0.0
    # all excluded: zero, still differentiable
    none = intra_chunk_loss_batch(maps, chunks, include=torch.tensor([False, False]))
    assert none.item() == 0.0 and none.requires_grad


def test_intra_rejects_bad_indices() -> None:
    with pytest.raises(IndexError):
        intra_chunk_loss(one_hot_maps(2), [[0, 2]])


def test_pool_word_maps_averages_pieces() -> None:
    maps = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1, 1).repeat(1, 1, 2, 2)
    # [CLS] w0 w1a w1b w2  -> word 1 is the mean of positions 2 and 3
    pooled = pool_word_maps(maps, [[None, 0, 1, 1, 2]])
    assert pooled.shape == (1, 3, 2, 2)
    assert pooled[0, :, 0, 0].tolist() == [1.0, 2.5, 4.0]


# --------------------------------------------------------------------------- L_inter


def hand_maps() -> torch.Tensor:
    """Two 6x6 chunk maps (one word each).

    M_ci: region A = {(0,0), (0,1)} at 1.0; region B = {(4,4), (4,5), (5,5)} at 0.5;
          (2,2) at 0.2 (below tau = 0.3, in no region); 0 elsewhere. min 0, max 1, so
          the min-max normalised map equals the map.
    M_cj: 1.0 at (3,5); 0.1 at (2,0) (below tau); 0 elsewhere.
    """
    mi = torch.zeros(6, 6)
    mi[0, 0] = mi[0, 1] = 1.0
    mi[4, 4] = mi[4, 5] = mi[5, 5] = 0.5
    mi[2, 2] = 0.2
    mj = torch.zeros(6, 6)
    mj[3, 5] = 1.0
    mj[2, 0] = 0.1
    return torch.stack([mi, mj])


def test_regions_points_and_closest_region_by_hand() -> None:
    mi, mj = hand_maps().numpy()
    n, labels = isolated_regions(mi, 0.3)
    assert n == 2
    a, b = labels[0, 0], labels[4, 4]
    assert a != b and labels[0, 1] == a and labels[4, 5] == b and labels[5, 5] == b
    assert labels[2, 2] == 0  # 0.2 is below tau
    points = points_above(mj, 0.3)
    assert np.argwhere(points).tolist() == [[3, 5]]
    # d_H(A, p) = min((3-0)^2 + (5-0)^2, (3-0)^2 + (5-1)^2) = 25; d_H(B, p) = (4-3)^2 = 1
    assert set_distance(labels == a, points) == 25.0
    assert set_distance(labels == b, points) == 1.0
    assert closest_region(labels, n, points) == b
    signs = inter_chunk_signs(mi, mj, 0.3)
    expected = np.zeros((6, 6), dtype=np.float32)
    expected[labels == a] = -1.0
    expected[labels == b] = 1.0
    np.testing.assert_array_equal(signs, expected)


def test_inter_loss_value_by_hand() -> None:
    maps = hand_maps()
    # i -> j: r* = B. Eq. 6 = -(0.5 * 3) + (1.0 + 1.0) = 0.5
    one_way = inter_chunk_loss(maps, [[0], [1]], symmetric=False, pixel_reduction="sum")
    assert one_way.item() == pytest.approx(0.5)
    # per-pixel mean (default): divided by the 36 cells
    assert inter_chunk_loss(maps, [[0], [1]], symmetric=False).item() == pytest.approx(0.5 / 36)
    # j -> i: M_cj has a single region {(3,5)}: r* is it, the suppression term is empty,
    # Eq. 6 = -1.0. Symmetric (default) averages both directions: (0.5 - 1.0) / 2
    both = inter_chunk_loss(maps, [[0], [1]], pixel_reduction="sum")
    assert both.item() == pytest.approx(-0.25)
    # chunks=None: the maps already are chunk maps, default adjacency (0, 1)
    assert inter_chunk_loss(maps, pixel_reduction="sum").item() == pytest.approx(-0.25)


def test_inter_loss_region_means_by_hand() -> None:
    maps = hand_maps()
    # i -> j: r* = B (3 cells at 0.5), the other region A (2 cells at 1.0):
    # -mean(B) + mean(A) = -0.5 + 1.0
    one_way = inter_chunk_loss(maps, [[0], [1]], symmetric=False, pixel_reduction="region")
    assert one_way.item() == pytest.approx(0.5)
    # j -> i: one region {(3,5)} at 1.0, nothing to suppress: -1.0; averaged: -0.25
    both = inter_chunk_loss(maps, [[0], [1]], pixel_reduction="region")
    assert both.item() == pytest.approx(-0.25)
    # widening r* with cells at tau's level lowers the summed loss but not the region one
    wider = maps.clone()
    wider[0, 5, 0:4] = 0.31  # a bar joined to B through the diagonal (5,3)-(4,4): 7 cells
    s_before = inter_chunk_loss(maps, [[0], [1]], symmetric=False, pixel_reduction="sum")
    s_after = inter_chunk_loss(wider, [[0], [1]], symmetric=False, pixel_reduction="sum")
    r_after = inter_chunk_loss(wider, [[0], [1]], symmetric=False, pixel_reduction="region")
    assert s_after.item() == pytest.approx(s_before.item() - 4 * 0.31)
    assert r_after.item() == pytest.approx(-(1.5 + 4 * 0.31) / 7 + 1.0)
    assert r_after.item() > one_way.item()


def test_inter_loss_is_invariant_to_scale_and_offset() -> None:
    maps = hand_maps()
    scaled = torch.stack([maps[0] * 1e-3 + 2e-3, maps[1] * 1e3])
    a = inter_chunk_loss(maps, pixel_reduction="sum")
    b = inter_chunk_loss(scaled, pixel_reduction="sum")
    assert b.item() == pytest.approx(a.item(), rel=1e-4)


def test_inter_gradient_raises_closest_region_and_lowers_the_others() -> None:
    maps = hand_maps().requires_grad_(True)
    loss = inter_chunk_loss(maps, [[0], [1]], symmetric=False, pixel_reduction="sum")
    loss.backward()
    g = maps.grad[0]
    # (4,4) in r*, not the min or max: d/dM of -M~ with M~ = M / (max - min) = 1 -> -1
    assert g[4, 4].item() == pytest.approx(-1.0)
    assert g[5, 5].item() == pytest.approx(-1.0)
    # (2,2) is in no region and is neither min nor max of the map: no gradient
    assert g[2, 2].item() == 0.0
    # the partner map only chose r* (no gradient through the selection)
    assert maps.grad[1].abs().max().item() == 0.0


def test_inter_chunk_maps_are_word_averages() -> None:
    mi = hand_maps()[0]
    # chunk 0 = words 0 and 1 with maps 2*mi and 0: their average is mi
    words = torch.stack([2.0 * mi, torch.zeros(6, 6), hand_maps()[1]])
    cm = chunk_maps(words, [[0, 1], [2]])
    torch.testing.assert_close(cm[0], mi)
    loss = inter_chunk_loss(words, [[0, 1], [2]], symmetric=False, pixel_reduction="sum")
    assert loss.item() == pytest.approx(0.5)


def test_inter_skips_pairs_without_points_or_regions() -> None:
    mi = hand_maps()[0]
    flat = torch.full((6, 6), 0.7)  # constant: min-max gives 0 everywhere
    maps = torch.stack([mi, flat])
    assert minmax_normalize(flat).abs().max().item() == 0.0
    # i -> j has no points in M_cj, j -> i has no region in M_cj: both skipped
    assert inter_chunk_loss(maps).item() == 0.0
    # a single chunk has no neighbour
    assert inter_chunk_loss(maps[:1]).item() == 0.0


def test_inter_ties_go_to_the_region_the_partner_points_at_most() -> None:
    mi = torch.zeros(5, 5)
    mi[0, 0] = 1.0  # region 1
    mi[0, 4] = 1.0  # region 2
    mj = torch.zeros(5, 5)
    mj[0, 0] = 0.4  # both regions touch p(M_cj): distance 0 to each
    mj[0, 4] = 1.0  # but M_cj is stronger on region 2
    n, labels = isolated_regions(mi.numpy(), 0.3)
    points = points_above(mj.numpy(), 0.3)
    assert closest_region(labels, n, points, tie_scores=mj.numpy()) == labels[0, 4]
    # Eq. 6 sum: -1 (r* at (0,4)) + 1 (suppressed (0,0)) = 0
    loss = inter_chunk_loss(torch.stack([mi, mj]), symmetric=False, pixel_reduction="sum")
    assert loss.item() == pytest.approx(0.0)


def test_regions_use_8_connectivity() -> None:
    diag = np.zeros((3, 3), dtype=np.float32)
    diag[0, 0] = diag[1, 1] = 1.0
    assert isolated_regions(diag, 0.3)[0] == 1
    assert isolated_regions(diag, 0.3, connectivity=4)[0] == 2


def test_inter_batch_exclusion_and_mean_over_pairs() -> None:
    hm = hand_maps()
    # sample 0: three chunks [hm0], [hm1], [hm0]; adjacency (0,1), (1,2)
    #   one-way pairs 0->1 = 0.5, 1->2 = -1.0 (M_c1 one region) -> mean -0.25
    # sample 1: excluded (negative caption)
    maps = torch.stack([torch.stack([hm[0], hm[1], hm[0]]), torch.rand(3, 6, 6)])
    maps.requires_grad_(True)
    chunks = [[[0], [1], [2]], [[0], [1], [2]]]
    kw = {"symmetric": False, "pixel_reduction": "sum"}
    per = inter_chunk_loss_batch(maps, chunks, include=[True, False], reduction="none", **kw)
    assert per.tolist() == pytest.approx([-0.25, 0.0])
    loss = inter_chunk_loss_batch(maps, chunks, include=[True, False], **kw)
    assert loss.item() == pytest.approx(-0.25)  # mean over the one included sample
    loss.backward()
    assert maps.grad[1].abs().max().item() == 0.0
    assert maps.grad[0].abs().sum().item() > 0
    # an explicit adjacency overrides the consecutive default: only (0, 2)
    # 0->2: M_c2 = M_ci again; p = regions A and B (both touch): tie -> larger sum of
    # M_c2 over the region: A (2 x 1.0) > B (3 x 0.5) -> r* = A: -(2) + 1.5 = -0.5
    adj = inter_chunk_loss_batch(
        maps.detach(), chunks, adjacency=[[(0, 2)], []], include=[True, False], **kw
    )
    assert adj.item() == pytest.approx(-0.5)
    # sample 1 included but without pairs: a sample with loss 0 in the mean
    adj = inter_chunk_loss_batch(maps.detach(), chunks, adjacency=[[(0, 2)], []], **kw)
    assert adj.item() == pytest.approx(-0.25)


def test_inter_validates_arguments() -> None:
    maps = hand_maps()
    with pytest.raises(ValueError, match="tau"):
        inter_chunk_loss(maps, tau=1.5)
    with pytest.raises(IndexError):
        inter_chunk_loss(maps, [[0], [1]], adjacency=[(0, 3)])


# --------------------------------------------------------------------------- L_box, L_semi


def test_mask_cosine_loss_values() -> None:
    target = torch.zeros(2, 4, 4)
    target[:, :2, :2] = 1.0
    same = target.clone()
    disjoint = torch.zeros(2, 4, 4)
    disjoint[:, 3, 3] = 1.0
    assert mask_cosine_loss(same, target).item() == pytest.approx(0.0, abs=1e-6)
    assert mask_cosine_loss(disjoint, target).item() == pytest.approx(1.0)
    # half overlap: map = 1 on (0,0),(0,1),(0,2),(0,3); target = the top-left 2x2
    half = torch.zeros(4, 4)
    half[0, :] = 1.0
    # cos = 2 / (2 * 2) = 0.5
    assert mask_cosine_loss(half, target[0]).item() == pytest.approx(0.5)


def test_mask_target_is_area_resized_to_the_map_grid() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.bool)
    target[0, :4, :4] = True  # the top-left quarter
    grid_map = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert box_loss(grid_map, target).item() == pytest.approx(0.0, abs=1e-6)


def test_semi_loss_only_on_labelled_samples() -> None:
    maps = torch.rand(3, 4, 4).requires_grad_(True)
    target = torch.zeros(3, 4, 4)
    target[:, 1:3, 1:3] = 1.0
    full = semi_loss(maps, target, reduction="none")
    loss = semi_loss(maps, target, labelled=[False, True, False])
    assert loss.item() == pytest.approx(full[1].item())
    loss.backward()
    assert maps.grad[0].abs().max().item() == 0.0 and maps.grad[2].abs().max().item() == 0.0
    assert maps.grad[1].abs().sum().item() > 0


def test_box_mask() -> None:
    mask = box_mask([[1, 0, 3, 2]], height=3, width=4)  # x0=1, y0=0, x1=3, y1=2 (exclusive)
    expected = torch.tensor([[[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]], dtype=torch.float32)
    torch.testing.assert_close(mask, expected)


# --------------------------------------------------------------------------- end to end


def test_chunk_losses_train_the_model_through_gradcam() -> None:
    """Real tokenizer + spaCy chunks + create_graph Grad-CAM of a tiny ALBEF: both chunk
    losses reach the model's parameters; the negative caption is excluded."""
    from chunk_helpers import tiny_model

    from wsris.blocks.noun_chunks import chunk_batch
    from wsris.methods.chunk.gradcam import compute_gradcam
    from wsris.text import Tokenizer

    tok = Tokenizer(style="albef")
    texts = ["the small red circle left of the green star", "donut without a hole"]
    batch = tok(texts)
    chunks = chunk_batch(batch, tok)
    assert chunks.include == [True, False]
    model = tiny_model()
    image = model.encode_image(torch.randn(1, 3, 32, 32)).tokens
    out = compute_gradcam(model, image, batch.input_ids, batch.attention_mask, create_graph=True)
    maps = out.maps  # [T, L, 4, 4], position 0 = [CLS]
    intra = intra_chunk_loss_batch(maps, chunks.position_chunks, include=chunks.include)
    inter = inter_chunk_loss_batch(
        maps, chunks.position_chunks, chunks.adjacency, include=chunks.include
    )
    assert intra.item() > 0
    # word-level variant: pool pieces per word, index with word chunks
    words = pool_word_maps(maps, batch.word_ids)
    intra_w = intra_chunk_loss_batch(words, chunks.word_chunks, include=chunks.include)
    # "the small red circle left of the green star" has no split word: same value
    assert intra_w.item() == pytest.approx(intra.item(), rel=1e-5)
    (0.5 * intra + 3.0 * inter).backward()
    grad = dict(model.named_parameters())["text_encoder.embeddings.word_embeddings.weight"].grad
    assert grad is not None and grad.abs().sum() > 0
