"""Unsupervised mask proposals: the stand-in for MCG used by the chunk method.

Lee et al. (2023, Sec. 3.3.2) refine the affinity-propagated map by picking, among the
mask proposals of Multi-scale Combinatorial Grouping (MCG), the one with the highest IoU
against the map. MCG has no Python package, so this module rebuilds its outline from
low-level cues only (no learned weights, no labels):

1. **Contours at several scales.** Colour-edge strength (Euclidean distance in CIELAB
   between 4-neighbours) of the image smoothed at a few Gaussian scales.
2. **Fine partition.** A hierarchical watershed by area (higra) of the finest edge map,
   cut into a few hundred superpixels; every later region is a union of them, so all the
   scales are aligned on one partition (MCG aligns its multi-scale UCMs the same way).
3. **Hierarchies.** On the superpixels' adjacency graph, several hierarchies are built from
   the boundary strengths of each scale (hierarchical watersheds by area and by volume,
   average-linkage merging on boundary strength, Ward merging of region colours). Every
   region of every hierarchy, i.e. of every horizontal cut, is a candidate.
4. **Combinations.** Unions of pairs and triples of adjacent, disjoint top-ranked regions.
5. **Ranking.** Each candidate is scored by the mean strength of its outer boundary minus
   a fraction of the strength of the boundaries it swallows, near-duplicates are removed by
   greedy IoU suppression, and the list is capped. Degenerate masks (tiny, or nearly the
   whole image) are dropped.

Differences from MCG: MCG's contours come from a learned structured-edge detector and its
proposal ranking is a random forest trained on PASCAL; both are replaced here by
hand-set, label-free rules. The hierarchy uses watersheds and linkage clustering instead of
the oriented-watershed UCM.

All candidate masks are handled as boolean vectors over superpixels, so IoUs and boundary
scores are small matrix products; pixel masks are only materialised at the end.
"""

from __future__ import annotations

import numpy as np

from wsris.errors import ImageError, InvalidInputError

__all__ = ["generate_proposals", "select_proposal", "proposal_ious"]

# Gaussian scales (in pixels of the working resolution) of the colour-edge maps.
_SIGMAS: tuple[float, ...] = (1.0, 2.5)


def _backends():
    try:
        import cv2
        import higra as hg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "mask proposals need higra and OpenCV: pip install 'wsris[proposals]'"
        ) from exc
    return cv2, hg


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


def _edge_weights(cv2, hg, graph, rgb: np.ndarray, sigma: float) -> np.ndarray:
    """CIELAB distance between 4-neighbours of the image smoothed at ``sigma``."""
    img = rgb.astype(np.float32) / 255.0
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    return np.asarray(hg.weight_graph(graph, lab, hg.WeightFunction.L2), dtype=np.float64)


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
    """The fine partition with its adjacency graph and boundary statistics."""

    def __init__(self, cv2, hg, rgb: np.ndarray, num_superpixels: int) -> None:
        h, w = rgb.shape[:2]
        graph = hg.get_4_adjacency_graph((h, w))
        weights = [_edge_weights(cv2, hg, graph, rgb, s) for s in _SIGMAS]
        tree, alt = hg.watershed_hierarchy_by_area(graph, weights[0])
        cut = hg.labelisation_horizontal_cut_from_num_regions(tree, alt, num_superpixels)
        rag = hg.make_region_adjacency_graph_from_labelisation(graph, cut)
        self.labels = np.asarray(hg.CptRegionAdjacencyGraph.get_vertex_map(rag)).reshape(h, w)
        self.rag = rag
        self.num = rag.num_vertices()
        self.area = np.bincount(self.labels.ravel(), minlength=self.num).astype(np.float64)
        self.src, self.dst = (np.asarray(a) for a in rag.edge_list())
        ones = np.ones(graph.num_edges(), dtype=np.float64)
        self.length = np.asarray(hg.rag_accumulate_on_edges(rag, hg.Accumulators.sum, ones))
        # Mean boundary strength per scale, each scale normalised by its length-weighted
        # mean so that the scales contribute equally.
        self.strength = []
        for wts in weights:
            s = np.asarray(hg.rag_accumulate_on_edges(rag, hg.Accumulators.mean, wts))
            norm = float((s * self.length).sum() / max(self.length.sum(), 1.0))
            self.strength.append(s / norm if norm > 0 else s)
        self.contrast = np.mean(self.strength, axis=0)
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
        flat = self.labels.ravel()
        self.colour = (
            np.stack([np.bincount(flat, lab[:, c], self.num) for c in range(3)], axis=1)
            / np.maximum(self.area, 1.0)[:, None]
        ).astype(np.float32)
        self.length_matrix = np.zeros((self.num, self.num), dtype=np.float32)
        self.length_matrix[self.src, self.dst] = self.length
        self.length_matrix[self.dst, self.src] = self.length
        step = np.linalg.norm(self.colour[self.src] - self.colour[self.dst], axis=1)
        border = np.zeros((h, w), dtype=np.float32)
        border[0, :] += 1
        border[-1, :] += 1
        border[:, 0] += 1
        border[:, -1] += 1
        self.border = np.bincount(flat, border.ravel(), self.num).astype(np.float32)
        self.colour_scale = max(float((step * self.length).sum() / self.length.sum()), 1e-6)

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


def _features(sp: _Superpixels, member: np.ndarray) -> dict[str, np.ndarray]:
    """Label-free objectness cues of boolean superpixel masks ``member`` [C,S]."""
    a = member[:, sp.src]
    b = member[:, sp.dst]
    cut = (a != b).astype(np.float32)
    inside = (a & b).astype(np.float32)
    cut_len = np.maximum(cut @ sp.length, 1e-9)
    in_len = np.maximum(inside @ sp.length, 1e-9)
    feats = {}
    for i, s in enumerate(sp.strength):
        feats[f"outer{i}"] = (cut @ (sp.length * s)) / cut_len
        feats[f"inner{i}"] = (inside @ (sp.length * s)) / in_len
    outer = np.mean([feats[f"outer{i}"] for i in range(len(sp.strength))], axis=0)
    inner = np.mean([feats[f"inner{i}"] for i in range(len(sp.strength))], axis=0)
    feats["logouter"] = np.log(np.maximum(outer, 1e-3))
    feats["logratio"] = np.log(np.maximum(outer, 1e-3) / (np.maximum(inner, 0) + 0.5))
    m = member.astype(np.float32)
    area = m @ sp.area.astype(np.float32)
    colour = (m * sp.area.astype(np.float32)) @ sp.colour / np.maximum(area, 1e-9)[:, None]
    ring = (m @ sp.length_matrix) * (1.0 - m)
    ring_w = ring.sum(1)
    ring_colour = ring @ sp.colour / np.maximum(ring_w, 1e-9)[:, None]
    dist = np.linalg.norm(colour - ring_colour, axis=1) / sp.colour_scale
    feats["colour"] = np.where(ring_w > 0, dist, 0.0)
    feats["logarea"] = np.log(area / sp.area.sum())
    perimeter = cut @ sp.length + m @ sp.border
    feats["compact"] = np.log(4 * np.pi * area / np.maximum(perimeter, 1.0) ** 2)
    return feats


_WEIGHTS = {"outer0": 0.5, "outer1": 0.5, "inner0": -0.25, "inner1": -0.25}


def _scores(sp: _Superpixels, member: np.ndarray) -> np.ndarray:
    feats = _features(sp, member)
    return sum(w * feats[k] for k, w in _WEIGHTS.items())


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


def _combinations(
    member: np.ndarray, adjacency: np.ndarray, top_pairs: int, top_triples: int
) -> np.ndarray:
    """Unions of adjacent, disjoint pairs (among the first ``top_pairs`` rows of
    ``member``) and triples (among the first ``top_triples``)."""
    s = member.shape[1]
    out = [np.zeros((0, s), dtype=bool)]
    k = min(top_pairs, len(member))
    if k < 2:
        return out[0]
    m = member[:k].astype(np.float32)
    touch = (m @ adjacency @ m.T) > 0
    overlap = (m @ m.T) > 0
    ok = np.triu(touch & ~overlap, 1)
    i, j = np.nonzero(ok)
    pairs = member[i] | member[j]
    out.append(pairs)
    k3 = min(top_triples, k)
    sel = (i < k3) & (j < k3)
    if sel.any() and k3 >= 3:
        pi, pj = i[sel], j[sel]
        pm = (member[pi] | member[pj]).astype(np.float32)
        m3 = m[:k3]
        touch3 = (pm @ adjacency @ m3.T) > 0
        overlap3 = (pm @ m3.T) > 0
        third = np.arange(k3)[None, :] > pj[:, None]  # each triple once: i < j < l
        r, c = np.nonzero(touch3 & ~overlap3 & third)
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
    max_area: float = 0.95,
    dedup_iou: float = 0.9,
    top_pairs: int = 40,
    top_triples: int = 15,
) -> np.ndarray:
    """Class-agnostic segment proposals for an RGB image, best first.

    Args:
        image: HxWx3 uint8 RGB image (HxW grey and HxWx4 are accepted; alpha is ignored).
        max_proposals: cap on the number of masks returned.
        max_side: the image is processed with its longer side at most this many pixels;
            masks are resized back (nearest) to the input resolution.
        num_superpixels: size of the fine partition every proposal is a union of.
        min_area, max_area: masks covering less / more than these fractions of the image
            are dropped (tiny and near-whole-image masks).
        dedup_iou: a candidate overlapping a better-ranked kept one with IoU above this
            is a near-duplicate and is dropped.
        top_pairs, top_triples: how many of the best single regions are combined into
            unions of adjacent pairs / triples.

    Returns:
        ``[P, H, W]`` bool array at the input resolution, ``P <= max_proposals``, ranked by
        boundary score. ``P`` may be 0 (e.g. for a flat image). Deterministic.
    """
    if isinstance(max_proposals, bool) or not isinstance(max_proposals, (int, np.integer)):
        raise InvalidInputError(f"max_proposals must be an int, got {max_proposals!r}")
    if max_proposals < 0:
        raise InvalidInputError(f"max_proposals must be >= 0, got {max_proposals}")
    rgb = _as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    empty = np.zeros((0, height, width), dtype=bool)
    if max_proposals == 0 or height * width < 16:
        return empty
    cv2, hg = _backends()
    work = _resize_to_max_side(cv2, rgb, max_side)
    sp = _Superpixels(cv2, hg, work, num_superpixels)
    total = float(sp.area.sum())
    if sp.num < 2:
        return empty

    member = np.concatenate([_tree_memberships(t, sp.num) for t in sp.hierarchies(hg)])
    member = member[_unique_rows(member)]
    area = member.astype(np.float32) @ sp.area.astype(np.float32)
    keep = (area >= max(min_area * total, 1.0)) & (area <= max_area * total)
    member = member[keep]
    if len(member) == 0:
        return empty

    score = _scores(sp, member)
    order = np.lexsort((np.arange(len(member)), -score))  # best first, ties by index
    singles = _greedy_nms(member, order, sp.area, dedup_iou, max(top_pairs, 1))

    adjacency = (sp.length_matrix > 0).astype(np.float32)
    combos = _combinations(member[singles], adjacency, top_pairs, top_triples)
    if len(combos):
        carea = combos.astype(np.float32) @ sp.area.astype(np.float32)
        combos = combos[carea <= max_area * total]
        member = np.concatenate([member, combos])
        score = np.concatenate([score, _scores(sp, combos)])
        first = _unique_rows(member)
        member, score = member[first], score[first]

    order = np.lexsort((np.arange(len(member)), -score))
    kept = _greedy_nms(member, order, sp.area, dedup_iou, max_proposals)
    labels = _nearest_upsample(sp.labels, (height, width))
    return member[kept][:, labels]


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
    flat = proposals.reshape(len(proposals), -1).astype(bool, copy=False)
    if len(flat) == 0:
        return np.zeros(0, dtype=np.float64)
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
