"""Unsupervised mask proposals (the MCG stand-in) and proposal selection (Sec. 3.3.2)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("higra")
pytest.importorskip("cv2")

from wsris.errors import ImageError, InvalidInputError  # noqa: E402
from wsris.methods.chunk import proposals as P  # noqa: E402
from wsris.methods.chunk.proposals import (  # noqa: E402
    generate_proposals,
    proposal_ious,
    select_proposal,
)


def _two_squares(k: int = 1, noise: float = 2.0) -> tuple:
    """A (96k)x(112k) grey background with a red and a blue square and mild noise;
    returns the image and the two square masks."""
    rng = np.random.default_rng(7)
    height, width = 96 * k, 112 * k
    img = np.full((height, width, 3), (120, 120, 120), dtype=np.float64)
    red = np.zeros((height, width), dtype=bool)
    red[10 * k : 40 * k, 12 * k : 42 * k] = True
    blue = np.zeros((height, width), dtype=bool)
    blue[52 * k : 86 * k, 60 * k : 94 * k] = True
    img[red] = (210, 40, 40)
    img[blue] = (40, 60, 220)
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), red, blue


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def scene():
    img, red, blue = _two_squares()
    return img, red, blue, generate_proposals(img)


# ------------------------------------------------------------------ generation


def test_output_is_bool_at_input_resolution(scene):
    img, _, _, props = scene
    assert props.dtype == np.bool_
    assert props.ndim == 3 and props.shape[1:] == img.shape[:2]
    assert 2 <= len(props) <= 200


def test_each_square_is_recovered(scene):
    _, red, blue, props = scene
    for gt in (red, blue):
        best = max(_iou(p, gt) for p in props)
        assert best > 0.95


def test_no_degenerate_or_duplicate_masks(scene):
    img, _, _, props = scene
    total = img.shape[0] * img.shape[1]
    areas = props.reshape(len(props), -1).sum(1)
    assert areas.min() >= 0.0005 * total  # no empty or tiny mask
    assert areas.max() <= 0.9 * total  # nothing close to the whole image
    flat = props.reshape(len(props), -1)
    inter = flat.astype(np.float32) @ flat.T.astype(np.float32)  # exact below 2**24
    union = areas[:, None] + areas[None, :] - inter
    iou = inter / union
    np.fill_diagonal(iou, 0.0)
    assert iou.max() <= 0.9  # near-duplicates were suppressed


def test_deterministic(scene):
    img, _, _, props = scene
    again = generate_proposals(img.copy())
    np.testing.assert_array_equal(props, again)


def test_max_proposals_is_honoured_and_a_prefix(scene):
    img, _, _, props = scene
    few = generate_proposals(img, max_proposals=3)
    assert few.shape == (3, *img.shape[:2])
    # The ranking does not depend on the cap: a smaller cap keeps the best ones.
    np.testing.assert_array_equal(few, props[:3])
    assert generate_proposals(img, max_proposals=0).shape == (0, *img.shape[:2])


def test_downscaled_processing_returns_masks_at_full_resolution():
    # Processed at half size (squares' edges fall on even pixels, so nothing is lost).
    img, red, blue = _two_squares(k=2)
    props = generate_proposals(img, max_side=112)
    assert props.shape[1:] == (192, 224)
    for gt in (red, blue):
        assert max(_iou(p, gt) for p in props) > 0.95


def test_flat_image_has_no_proposals():
    props = generate_proposals(np.full((40, 50, 3), 90, dtype=np.uint8))
    assert props.shape == (0, 40, 50)


def test_grey_and_rgba_inputs_are_accepted():
    img, red, _ = _two_squares()
    grey = img.mean(axis=2).astype(np.uint8)
    assert generate_proposals(grey, 10).shape[1:] == grey.shape
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(generate_proposals(rgba, 10), generate_proposals(img, 10))


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8, 3), dtype=np.float32), np.zeros((8, 8, 2), dtype=np.uint8), [[0]]],
)
def test_bad_images_raise_image_error(image):
    with pytest.raises(ImageError):
        generate_proposals(image)


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_bad_max_proposals(n):
    with pytest.raises(InvalidInputError):
        generate_proposals(np.zeros((8, 8, 3), dtype=np.uint8), n)


def test_edge_weights_follow_higra_edge_order():
    import cv2
    import higra as hg

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    ref = hg.weight_graph(hg.get_4_adjacency_graph((5, 7)), lab, hg.WeightFunction.L2)
    np.testing.assert_allclose(P._edge_weights(cv2, img, 0.0), ref, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------- helpers by hand


def test_unique_rows_keeps_first_of_identical_masks():
    rows = np.array(
        [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=bool
    )
    np.testing.assert_array_equal(P._unique_rows(rows), [0, 1, 4])


def test_greedy_nms_drops_near_duplicates_of_better_ranked():
    # Superpixel areas 10, 10, 1, 20; masks as unions of them.
    area = np.array([10, 10, 1, 20], dtype=np.float32)
    member = np.array(
        [
            [1, 1, 0, 0],  # 20 px
            [1, 1, 1, 0],  # 21 px, IoU with row 0 = 20/21 = 0.952
            [0, 0, 0, 1],  # 20 px, disjoint from rows 0/1
            [1, 0, 0, 0],  # 10 px, IoU with row 0 = 0.5
            [1, 1, 0, 0],  # identical to row 0
        ],
        dtype=bool,
    )
    order = np.array([1, 0, 2, 3, 4])  # row 1 ranked best
    assert P._greedy_nms(member, order, area, 0.9, 10) == [1, 2, 3]
    assert P._greedy_nms(member, order, area, 0.9, 2) == [1, 2]
    assert P._greedy_nms(member, order, area, 0.4, 10) == [1, 2]  # 10/21 = 0.476 > 0.4


def test_combinations_join_only_across_weak_contours():
    # Four superpixels in a row, 0 | 1 : 2 | 3, where the 1-2 contour is weak (0.1) and
    # the others strong (1.0). Outer contrast of 1 and of 2 is (1.0 + 0.1) / 2 = 0.55 >
    # 0.1, so {1, 2} is a union; 0-1 and 2-3 share a contour as strong as the outer one
    # of 0 (resp. 3), so they are not; {1, 2} + 0 or + 3 fails for the same reason.
    sp = SimpleNamespace(
        src=np.array([0, 1, 2]),
        dst=np.array([1, 2, 3]),
        length=np.ones(3, dtype=np.float32),
        contrast=np.array([1.0, 0.1, 1.0], dtype=np.float32),
    )
    combos = P._combinations(sp, np.eye(4, dtype=bool), top_pairs=4, top_triples=4)
    np.testing.assert_array_equal(combos, [[False, True, True, False]])


def test_scores_prefer_a_whole_object_to_a_fragment(scene):
    import cv2
    import higra as hg

    img, red, _, _ = scene
    sp = P._Superpixels(cv2, hg, img, 600)
    whole = np.bincount(sp.labels[red], minlength=sp.num) > 0
    inside = np.flatnonzero(whole)
    if len(inside) < 2:
        pytest.skip("the square is a single superpixel")
    fragment = np.zeros(sp.num, dtype=bool)
    fragment[inside[0]] = True
    scores = P._scores(sp, np.stack([whole, fragment]))
    assert scores[0] > scores[1]


# ------------------------------------------------------------------- selection


def _hand_proposals() -> np.ndarray:
    props = np.zeros((3, 10, 10), dtype=bool)
    props[0, :5, :] = True  # top half, 50 px
    props[1, :, :5] = True  # left half, 50 px
    props[2, :3, :3] = True  # 3x3 corner, 9 px
    return props


def test_select_proposal_by_hand():
    score = np.zeros((10, 10))
    score[:4, :4] = 0.3  # exactly tau: included (>=)
    score[0, 0] = 1.0
    # Binarised: the 4x4 corner (16 px).
    # IoU(top half) = 16 / 50, IoU(left half) = 16 / 50, IoU(3x3) = 9 / 16.
    index, iou = select_proposal(_hand_proposals(), score, tau=0.3)
    assert index == 2
    assert iou == pytest.approx(9 / 16)
    np.testing.assert_allclose(
        proposal_ious(_hand_proposals(), score >= 0.3), [16 / 50, 16 / 50, 9 / 16]
    )


def test_select_proposal_ties_go_to_the_better_ranked():
    score = np.zeros((10, 10))
    score[:5, :5] = 0.9  # 25 px; IoU 25/50 with both halves, 9/25 with the corner
    index, iou = select_proposal(_hand_proposals(), score)
    assert (index, iou) == (0, pytest.approx(0.5))


def test_select_proposal_threshold_changes_the_choice():
    score = np.zeros((10, 10))
    score[:5, :] = 0.4  # the top half ...
    score[:3, :3] = 0.8  # ... with a hot corner
    assert select_proposal(_hand_proposals(), score, tau=0.3)[0] == 0
    assert select_proposal(_hand_proposals(), score, tau=0.5) == (2, 1.0)


def test_select_proposal_no_match_returns_minus_one():
    props = _hand_proposals()
    assert select_proposal(props, np.zeros((10, 10))) == (-1, 0.0)  # empty binarised map
    assert select_proposal(np.zeros((0, 10, 10), bool), np.ones((10, 10))) == (-1, 0.0)
    disjoint = np.zeros((10, 10))
    disjoint[8:, 8:] = 1.0
    assert select_proposal(props, disjoint) == (-1, 0.0)


def test_select_proposal_shape_mismatch_is_an_error():
    with pytest.raises(InvalidInputError):
        select_proposal(_hand_proposals(), np.zeros((10, 11)))
    with pytest.raises(InvalidInputError):
        select_proposal(_hand_proposals(), np.zeros((1, 10, 10)))


def test_select_on_generated_proposals_finds_the_square(scene):
    _, red, _, props = scene
    score = np.where(red, 0.8, 0.05)
    score[20:30, 45:55] = 0.6  # some spill outside the square
    index, iou = select_proposal(props, score)
    assert index >= 0
    assert _iou(props[index], red) > 0.95
    assert iou == pytest.approx(_iou(props[index], score >= 0.3))


def test_proposal_ious_matches_a_loop():
    rng = np.random.default_rng(3)
    props = rng.random((6, 9, 8)) < 0.4
    props[5] = False  # an empty proposal has IoU 0 with a non-empty mask
    mask = rng.random((9, 8)) < 0.5
    expected = [(p & mask).sum() / (p | mask).sum() for p in props]
    np.testing.assert_allclose(proposal_ious(props, mask), expected)


def test_select_by_mean_takes_the_hottest_large_enough_proposal():
    from wsris.methods.chunk.proposals import select_proposal_by_mean

    props = np.zeros((3, 10, 10), bool)
    props[0, :1, :1] = True  # 1 px: the hottest, but below min_area 0.05 (5 px)
    props[1, 2:6, 2:6] = True  # 16 px, mean 0.5
    props[2, 5:10, 5:10] = True  # 25 px
    score = np.zeros((10, 10))
    score[0, 0] = 1.0
    score[2:6, 2:6] = 0.5
    score[5:10, 5:10] = 0.2
    score[5, 5] = 0.5  # shared corner
    index, mean = select_proposal_by_mean(props, score, min_area=0.05)
    assert index == 1 and mean == pytest.approx(0.5)
    assert select_proposal_by_mean(props, score, min_area=0.0)[0] == 0
    assert select_proposal_by_mean(props, score, min_area=0.5) == (-1, 0.0)
    with pytest.raises(InvalidInputError):
        select_proposal_by_mean(props, score[:5], 0.01)
