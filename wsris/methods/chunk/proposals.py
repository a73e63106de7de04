"""Unsupervised mask proposals: the stand-in for MCG used by the chunk method.

Lee et al. (2023, Sec. 3.3.2) refine the affinity-propagated map by picking, among the
mask proposals of Multi-scale Combinatorial Grouping (MCG), the one with the highest IoU
against the map binarised at tau. MCG has no Python package, so this module rebuilds its
outline from low-level cues only (no learned weights, no labels):

1. **Contours at two scales.** Colour-edge strength (CIELAB distance between 4-neighbours)
   of the image smoothed with Gaussians of sigma 0.5 and 2.5 pixels.
2. **Fine partition.** A hierarchical watershed by area (higra) of the fine edge map, cut
   into a few hundred superpixels. Every later region is a union of them, so all scales
   and hierarchies are aligned on one partition (MCG aligns its multi-scale UCMs too).
3. **Hierarchies.** On the superpixels' adjacency graph, seven hierarchies: for each scale,
   hierarchical watersheds by area and by volume and average-linkage merging on the mean
   boundary strength; plus Ward merging of mean region colours. Every region of every
   hierarchy (i.e. of every horizontal cut) is a candidate.
4. **Combinations.** Unions of adjacent, disjoint pairs and triples of the best-ranked
   regions whose shared contour is weaker than each one's outer contour.
5. **Ranking.** A hand-set score (:func:`_scores`: outer contour strength, inner contours,
   compactness, size), greedy IoU suppression of near-duplicates, then the cap. Empty,
   tiny and near-whole-image masks are dropped.

Differences from MCG: MCG's contours come from a learned structured-edge detector, its
hierarchy from an oriented-watershed UCM over an image pyramid, and its ranking from a
random forest trained on PASCAL with Pareto-front selection of combinations; here they
are a colour gradient at two blur scales, watershed/linkage hierarchies and a hand-set
score, none of them learned.

Candidates are boolean vectors over superpixels, so scores and IoUs are small matrix
products; pixel masks are materialised only for the returned proposals.
"""

from __future__ import annotations

import numpy as np

from wsris.errors import ImageError, InvalidInputError

from .proposal_backends import _backends, _single_threaded_blas

__all__ = ["generate_proposals", "select_proposal", "proposal_ious"]

# Gaussian scales (in pixels of the working resolution) of the colour-edge maps.
_SIGMAS: tuple[float, ...] = (0.5, 2.5)


# --------------------------------------------------------------------------- input


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


def _resize_to_max_side(cv2, rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _nearest_upsample(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (pixel centres aligned)."""
    h, w = labels.shape
    height, width = shape
    if (h, w) == (height, width):
        return labels
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return labels[rows[:, None], cols[None, :]]


# ------------------------------------------------------------------ graph building


def _edge_weights(cv2, rgb: np.ndarray, sigma: float) -> np.ndarray:
    """CIELAB distance between 4-neighbours of the image smoothed at ``sigma``.

    Ordered like the edges of ``higra.get_4_adjacency_graph``: pixels in raster order,
    each with its right then its lower neighbour (where they exist).
    """
    img = rgb.astype(np.float32) / 255.0
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    h, w = lab.shape[:2]
    out = np.zeros((h, w, 2), dtype=np.float32)
    out[:, :-1, 0] = np.sqrt(np.square(lab[:, 1:] - lab[:, :-1]).sum(-1))
    out[:-1, :, 1] = np.sqrt(np.square(lab[1:] - lab[:-1]).sum(-1))
    valid = np.ones((h, w, 2), dtype=bool)
    valid[:, -1, 0] = False
    valid[-1, :, 1] = False
    return out[valid]


def _tree_memberships(tree, num_leaves: int) -> np.ndarray:
    """[num_nodes, num_leaves] bool: which leaves (superpixels) each tree node covers."""
    parents = tree.parents()
    n = tree.num_vertices()
    member = np.zeros((n, num_leaves), dtype=bool)
    member[np.arange(num_leaves), np.arange(num_leaves)] = True
    for node in range(n - 1):  # children always precede their parent; the root is last
        member[parents[node]] |= member[node]
    return member


def _unique_rows(masks: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct boolean row, in input order."""
    if len(masks) == 0:
        return np.zeros(0, dtype=np.intp)
    packed = np.packbits(masks, axis=1)
    packed = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    _, first = np.unique(packed, return_index=True)
    return np.sort(first)


class _Superpixels:
    """The fine partition with its adjacency graph and boundary statistics.

    Attributes: ``labels`` [h,w] superpixel index; ``num``; ``area``, ``border`` (pixels on
    the image border) and ``colour`` (mean CIELAB) per superpixel; ``src``/``dst``/
    ``length`` per adjacency edge (length in pixel edges); ``strength``: per contour scale,
    the mean edge strength along each adjacency edge, normalised by its length-weighted
    mean so that scales weigh the same; ``contrast``: their average.
    """

    def __init__(self, cv2, hg, rgb: np.ndarray, num_superpixels: int) -> None:
        h, w = rgb.shape[:2]
        graph = hg.get_4_adjacency_graph((h, w))
        weights = [_edge_weights(cv2, rgb, s) for s in _SIGMAS]
        # Hierarchical watershed by area of the finest edge map, cut at ``num_superpixels``
        # regions. Built on the graph of the watershed basins (with pass values) rather
        # than on the pixels: the same hierarchy up to ties, at half the cost.
        basins = hg.labelisation_watershed(graph, weights[0])
        basin_rag = hg.make_region_adjacency_graph_from_labelisation(graph, basins)
        if basin_rag.num_vertices() < 2:  # a flat image (higra would crash on no edges)
            self.num, self.labels = 1, np.zeros((h, w), dtype=np.int64)
            return
        basin_of = np.asarray(hg.CptRegionAdjacencyGraph.get_vertex_map(basin_rag)).ravel()
        passes = hg.rag_accumulate_on_edges(basin_rag, hg.Accumulators.min, weights[0])
        basin_area = np.bincount(basin_of).astype(np.float64)
        tree, alt = hg.watershed_hierarchy_by_area(basin_rag, passes, vertex_area=basin_area)
        # (higra projects a cut of a tree on a region adjacency graph back onto the pixels)
        cut = hg.labelisation_horizontal_cut_from_num_regions(tree, alt, num_superpixels)
        rag = hg.make_region_adjacency_graph_from_labelisation(graph, np.asarray(cut).ravel())
        self.rag = rag
        self.num = rag.num_vertices()
        self.labels = np.asarray(hg.CptRegionAdjacencyGraph.get_vertex_map(rag)).reshape(h, w)
        flat = self.labels.ravel()
        self.area = np.bincount(flat, minlength=self.num).astype(np.float32)
        edge_of_border = np.zeros((h, w), dtype=np.float32)
        edge_of_border[[0, -1], :] += 1
        edge_of_border[:, [0, -1]] += 1
        self.border = np.bincount(flat, edge_of_border.ravel(), self.num).astype(np.float32)
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
        sums = np.stack([np.bincount(flat, lab[:, c], self.num) for c in range(3)], axis=1)
        self.colour = (sums / np.maximum(self.area, 1.0)[:, None]).astype(np.float32)

        self.src, self.dst = (np.asarray(a) for a in rag.edge_list())
        ones = np.ones(graph.num_edges(), dtype=np.float64)
        length = hg.rag_accumulate_on_edges(rag, hg.Accumulators.sum, ones)
        self.length = np.asarray(length, dtype=np.float32)
        self.strength = []
        for wts in weights:
            st = np.asarray(hg.rag_accumulate_on_edges(rag, hg.Accumulators.mean, wts))
            norm = float((st * self.length).sum() / max(float(self.length.sum()), 1.0))
            self.strength.append((st / norm if norm > 0 else st).astype(np.float32))
        self.contrast = np.mean(self.strength, axis=0)

    def hierarchies(self, hg):
        """Trees whose leaves are the superpixels (several criteria and scales)."""
        rag, area = self.rag, self.area
        trees = []
        for s in self.strength:
            trees.append(hg.watershed_hierarchy_by_area(rag, s, vertex_area=area)[0])
            trees.append(hg.watershed_hierarchy_by_volume(rag, s, vertex_area=area)[0])
            trees.append(hg.binary_partition_tree_average_linkage(rag, s, self.length)[0])
        trees.append(hg.binary_partition_tree_ward_linkage(rag, self.colour, area)[0])
        return trees


# -------------------------------------------------------------------- scoring


# Ranking weights, set by hand on procedural scenes (see benchmarks/proposals.py).
_EPS = 0.05  # floor of the normalised contour strength inside the log
_W_INNER = 0.5  # penalty for contours the mask swallows
_W_COMPACT = 0.5  # weight of log compactness
_W_AREA = 0.2  # weight of log area fraction


def _scores(sp: _Superpixels, member: np.ndarray) -> np.ndarray:
    """Label-free objectness of boolean superpixel masks ``member`` [C,S], higher is better.

    Per contour scale, the length-weighted mean of the log strength along the outer
    boundary (a geometric mean: a boundary that is weak anywhere, as for a fragment of a
    uniform region, scores low) minus ``_W_INNER * log1p`` of the mean strength of the
    boundaries inside the mask; averaged over scales; plus weighted log compactness
    ``4 pi area / perimeter^2`` (the image border counts as perimeter, so thin slivers and
    ragged masks lose) and weighted log area fraction.
    """
    a = member[:, sp.src]
    b = member[:, sp.dst]
    cut = (a != b).astype(np.float32)
    inside = (a & b).astype(np.float32)
    cut_len = cut @ sp.length
    in_len = np.maximum(inside @ sp.length, 1e-9)
    score = np.zeros(len(member), dtype=np.float64)
    for s in sp.strength:
        outer = (cut @ (sp.length * np.log(s + _EPS))) / np.maximum(cut_len, 1e-9)
        inner = (inside @ (sp.length * s)) / in_len
        score += (outer - _W_INNER * np.log1p(inner)) / len(sp.strength)
    m = member.astype(np.float32)
    area = m @ sp.area
    perimeter = np.maximum(cut_len + m @ sp.border, 1.0)
    score += _W_COMPACT * np.log(4 * np.pi * area / perimeter**2)
    return score + _W_AREA * np.log(area / sp.area.sum())


def _pairwise_iou(a: np.ndarray, b: np.ndarray, area: np.ndarray) -> np.ndarray:
    """IoU between rows of boolean superpixel masks ``a`` [m,S] and ``b`` [n,S]."""
    af = a.astype(np.float32)
    bf = b.astype(np.float32)
    w = area.astype(np.float32)
    inter = (af * w) @ bf.T
    union = (af @ w)[:, None] + (bf @ w)[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def _greedy_nms(
    member: np.ndarray, order: np.ndarray, area: np.ndarray, iou_thr: float, limit: int
) -> list[int]:
    """Keep candidates in ``order`` unless they overlap a kept one with IoU > ``iou_thr``."""
    kept: list[int] = []
    block = max(4 * limit, 256)
    for start in range(0, len(order), block):
        chunk = order[start : start + block]
        suppressed = np.zeros(len(chunk), dtype=bool)
        if kept:
            suppressed |= (_pairwise_iou(member[chunk], member[kept], area) > iou_thr).any(1)
        iou = _pairwise_iou(member[chunk], member[chunk], area)
        for i in range(len(chunk)):
            if suppressed[i]:
                continue
            kept.append(int(chunk[i]))
            if len(kept) >= limit:
                return kept
            suppressed |= iou[i] > iou_thr
    return kept


def _mergeable(sp: _Superpixels, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[m,n] bool: masks ``a[i]`` and ``b[j]`` are disjoint, touch, and the contour between
    them is weaker than the outer contour of each (so their union is a plausible object)."""
    lc = sp.length * sp.contrast

    def outer(x: np.ndarray) -> np.ndarray:
        cut = (x[:, sp.src] != x[:, sp.dst]).astype(np.float32)
        return (cut @ lc) / np.maximum(cut @ sp.length, 1e-9)

    def between(values: np.ndarray) -> np.ndarray:
        af, bf = a.astype(np.float32), b.astype(np.float32)
        fwd = (af[:, sp.src] * values) @ bf[:, sp.dst].T
        return fwd + (af[:, sp.dst] * values) @ bf[:, sp.src].T

    shared_len = between(sp.length)
    shared = between(lc) / np.maximum(shared_len, 1e-9)
    weaker = shared < np.minimum(outer(a)[:, None], outer(b)[None, :])
    disjoint = (a.astype(np.float32) @ b.T.astype(np.float32)) == 0
    return (shared_len > 0) & disjoint & weaker


def _combinations(
    sp: _Superpixels, member: np.ndarray, top_pairs: int, top_triples: int
) -> np.ndarray:
    """Unions of mergeable pairs (among the first ``top_pairs`` rows of ``member``) and
    triples (a mergeable pair plus one more of the first ``top_triples`` rows)."""
    out = [np.zeros((0, member.shape[1]), dtype=bool)]
    k = min(top_pairs, len(member))
    if k < 2:
        return out[0]
    i, j = np.nonzero(np.triu(_mergeable(sp, member[:k], member[:k]), 1))
    out.append(member[i] | member[j])
    k3 = min(top_triples, k)
    sel = (i < k3) & (j < k3)
    if sel.any() and k3 >= 3:
        pi, pj = i[sel], j[sel]
        ok = _mergeable(sp, member[pi] | member[pj], member[:k3])
        ok &= np.arange(k3)[None, :] > pj[:, None]  # each triple once: i < j < l
        r, c = np.nonzero(ok)
        out.append(member[pi[r]] | member[pj[r]] | member[c])
    return np.concatenate(out, axis=0)


# ----------------------------------------------------------------------- API


def generate_proposals(
    image: np.ndarray,
    max_proposals: int = 200,
    *,
    max_side: int = 512,
    num_superpixels: int = 600,
    min_area: float = 0.0005,
    max_area: float = 0.9,
    dedup_iou: float = 0.9,
    top_pairs: int = 40,
    top_triples: int = 15,
) -> np.ndarray:
    """Class-agnostic segment proposals for an RGB image, best first (MCG stand-in).

    Args:
        image: HxWx3 uint8 RGB image (HxW grey and HxWx4 are accepted; alpha is ignored).
        max_proposals: cap on the number of masks returned.
        max_side: the image is processed with its longer side at most this many pixels
            (area-downsampled); masks are resized back (nearest) to the input resolution.
        num_superpixels: size of the fine partition every proposal is a union of.
        min_area, max_area: masks covering less / more than these fractions of the image
            are dropped (empty, tiny and near-whole-image masks).
        dedup_iou: a candidate whose IoU with a better-ranked kept one exceeds this is a
            near-duplicate and is dropped.
        top_pairs, top_triples: how many of the best single regions are combined into
            unions of adjacent pairs / triples (0 turns combinations off).

    Returns:
        ``[P, H, W]`` bool at the input resolution, ``0 <= P <= max_proposals``, best
        ranked first; ``P`` is 0 for a flat image or ``max_proposals == 0``. Deterministic.
        Memory is ``P * H * W`` bytes: pass a downscaled image for large photos.

    Raises:
        ImageError: not a uint8 HxWx3 (or HxW / HxWx4) array.
        InvalidInputError: ``max_proposals`` is not a non-negative int, or another
            option is out of range.
    """
    if isinstance(max_proposals, bool) or not isinstance(max_proposals, (int, np.integer)):
        raise InvalidInputError(f"max_proposals must be an int, got {max_proposals!r}")
    if max_proposals < 0:
        raise InvalidInputError(f"max_proposals must be >= 0, got {max_proposals}")
    if max_side < 8 or num_superpixels < 2:
        raise InvalidInputError("max_side must be >= 8 and num_superpixels >= 2")
    if not 0.0 <= min_area < max_area or not 0.0 < dedup_iou <= 1.0:
        raise InvalidInputError("need 0 <= min_area < max_area and 0 < dedup_iou <= 1")
    rgb = _as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    if max_proposals == 0 or min(height, width) < 2:
        return np.zeros((0, height, width), dtype=bool)
    cv2, hg = _backends()
    with _single_threaded_blas():
        sp = _Superpixels(cv2, hg, _resize_to_max_side(cv2, rgb, max_side), num_superpixels)
        member = _rank(sp, hg, max_proposals, min_area, max_area, dedup_iou, top_pairs, top_triples)
    return member[:, _nearest_upsample(sp.labels, (height, width))]


def _rank(
    sp: _Superpixels,
    hg,
    limit: int,
    min_area: float,
    max_area: float,
    dedup_iou: float,
    top_pairs: int,
    top_triples: int,
) -> np.ndarray:
    """Candidates from the hierarchies and their combinations, scored, deduplicated and
    capped: ``[P, S]`` bool over superpixels, best first."""
    if sp.num < 2:
        return np.zeros((0, sp.num), dtype=bool)
    total = float(sp.area.sum())

    def admissible(masks: np.ndarray) -> np.ndarray:
        area = masks.astype(np.float32) @ sp.area
        return masks[(area >= max(min_area * total, 1.0)) & (area <= max_area * total)]

    member = np.concatenate([_tree_memberships(t, sp.num) for t in sp.hierarchies(hg)])
    member = admissible(member[_unique_rows(member)])
    if len(member) == 0:
        return member
    score = _scores(sp, member)
    order = np.lexsort((np.arange(len(member)), -score))  # best first, ties by index
    singles = _greedy_nms(member, order, sp.area, dedup_iou, max(top_pairs, 1))

    combos = admissible(_combinations(sp, member[singles], top_pairs, top_triples))
    if len(combos):
        member = np.concatenate([member, combos])
        score = np.concatenate([score, _scores(sp, combos)])
        first = _unique_rows(member)
        member, score = member[first], score[first]
    order = np.lexsort((np.arange(len(member)), -score))
    return member[_greedy_nms(member, order, sp.area, dedup_iou, limit)]


def proposal_ious(proposals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """IoU of every proposal ``[P,H,W]`` with one boolean ``mask`` ``[H,W]`` (vectorised).

    A proposal and a mask that are both empty have IoU 0.
    """
    proposals = np.asarray(proposals)
    mask = np.asarray(mask, dtype=bool)
    if proposals.ndim != 3 or proposals.shape[1:] != mask.shape:
        raise InvalidInputError(
            f"proposals {proposals.shape} and mask {mask.shape} must be [P,H,W] and [H,W]"
        )
    if len(proposals) == 0:
        return np.zeros(0, dtype=np.float64)
    flat = proposals.reshape(len(proposals), -1).astype(bool, copy=False)
    m = mask.ravel()
    inter = np.count_nonzero(flat[:, m], axis=1)
    union = np.count_nonzero(flat, axis=1) + np.count_nonzero(m) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def select_proposal(
    proposals: np.ndarray, score_map: np.ndarray, tau: float = 0.3
) -> tuple[int, float]:
    """The proposal that best matches a localisation map (Lee et al. 2023, Sec. 3.3.2).

    The map is binarised as ``score_map >= tau`` and the proposal with the highest IoU
    against it is chosen; ties go to the earlier (better-ranked) proposal.

    Returns:
        ``(index, iou)``. When no proposal overlaps the binarised map at all -- because
        there are no proposals, the binarised map is empty, or it touches none of them --
        the result is ``(-1, 0.0)``; the caller should then keep the thresholded map.

    Raises:
        InvalidInputError: if the shapes are not ``[P,H,W]`` and ``[H,W]``.
    """
    score_map = np.asarray(score_map)
    if score_map.ndim != 2:
        raise InvalidInputError(f"score_map must be HxW, got shape {score_map.shape}")
    ious = proposal_ious(proposals, score_map >= tau)
    if len(ious) == 0:
        return -1, 0.0
    best = int(np.argmax(ious))
    if ious[best] <= 0.0:
        return -1, 0.0
    return best, float(ious[best])


def select_proposal_by_mean(
    proposals: np.ndarray, score_map: np.ndarray, min_area: float = 0.01
) -> tuple[int, float]:
    """The proposal with the highest mean of ``score_map`` inside it, among proposals
    covering at least ``min_area`` of the image (a departure from the paper's IoU rule,
    for maps that peak on a few tokens of the object rather than cover it: their
    binarised map is smaller than the object, so the IoU rule prefers fragments).

    Returns ``(index, mean)``; ``(-1, 0.0)`` when no proposal is large enough.
    """
    score_map = np.asarray(score_map, dtype=np.float64)
    if score_map.ndim != 2 or proposals.ndim != 3 or proposals.shape[1:] != score_map.shape:
        raise InvalidInputError(
            f"expected proposals [P,H,W] and a map [H,W] of the same size, got "
            f"{proposals.shape} and {score_map.shape}"
        )
    if not 0.0 <= min_area < 1.0:
        raise InvalidInputError(f"min_area must be in [0, 1), got {min_area}")
    flat = proposals.reshape(len(proposals), -1).astype(np.float64)
    areas = flat.sum(axis=1)
    means = (flat @ score_map.reshape(-1)) / np.maximum(areas, 1.0)
    means[areas < max(1.0, min_area * score_map.size)] = -np.inf
    if len(means) == 0 or not np.isfinite(means).any():
        return -1, 0.0
    best = int(np.argmax(means))
    return best, float(means[best])
