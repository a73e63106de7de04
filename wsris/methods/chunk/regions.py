"""The regions of ``L_inter`` (Eq. 5-6): isolated regions of a chunk map, the one
closest to a neighbouring chunk, and the per-location signs of the loss.

NumPy and OpenCV on detached maps (the regions select locations; the gradient flows
through the maps in :mod:`.losses`).
"""

from __future__ import annotations

import cv2
import numpy as np


def isolated_regions(
    norm_map: np.ndarray, tau: float = 0.3, connectivity: int = 8
) -> tuple[int, np.ndarray]:
    """Connected components (OpenCV) of ``norm_map > tau``.

    Returns ``(n_regions, labels)``: ``labels`` is int32 ``[h, w]``, 0 below the
    threshold and ``1..n_regions`` for the regions.
    """
    binary = (np.asarray(norm_map) > tau).astype(np.uint8)
    n_labels, labels = cv2.connectedComponents(binary, connectivity=connectivity)
    return int(n_labels) - 1, labels.astype(np.int32)


def points_above(norm_map: np.ndarray, tau: float = 0.3) -> np.ndarray:
    """``p(M, tau)`` as a bool mask: the locations whose normalised score is > ``tau``."""
    return np.asarray(norm_map) > tau


def squared_distance_to(points: np.ndarray) -> np.ndarray:
    """Exact squared Euclidean distance (pixels) from every location to the nearest point.

    OpenCV's precise distance transform (``DIST_MASK_PRECISE``) on the complement of the
    point mask; squared distances between grid points are integers, so they are rounded.
    """
    points = np.asarray(points, dtype=bool)
    if not points.any():
        raise ValueError("no points to measure a distance to")
    src = np.where(points, 0, 255).astype(np.uint8)
    dist = cv2.distanceTransform(src, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.rint(dist.astype(np.float64) ** 2)


def set_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. 5, ``d_H(X, Y) = min_{x in X} min_{y in Y} ||x - y||^2`` for two bool masks."""
    x = np.asarray(x, dtype=bool)
    if not x.any():
        raise ValueError("empty set X")
    return float(squared_distance_to(y)[x].min())


def closest_region(
    labels: np.ndarray,
    n_regions: int,
    points: np.ndarray,
    tie_scores: np.ndarray | None = None,
    sq_dist: np.ndarray | None = None,
) -> int:
    """Eq. 4, ``r* = argmin_r d_H(r, points)``; returns the region label (1-based).

    Ties (e.g. several regions touching the points, distance 0) go to the region with the
    largest sum of ``tie_scores`` (the normalised partner map ``M_cj``: the region the
    other chunk points at most strongly), then to the lowest label. ``sq_dist`` may pass
    a precomputed :func:`squared_distance_to` of ``points``.
    """
    if n_regions < 1:
        raise ValueError("no region to choose from")
    sq = squared_distance_to(points) if sq_dist is None else sq_dist
    flat = np.asarray(labels).ravel()
    dist = np.full(n_regions + 1, np.inf)
    np.minimum.at(dist, flat, sq.ravel())
    score = np.zeros(n_regions + 1)
    if tie_scores is not None:
        score = np.bincount(flat, weights=np.asarray(tie_scores, np.float64).ravel(),
                            minlength=n_regions + 1)  # fmt: skip
    regions = np.arange(1, n_regions + 1)
    # lexsort: last key is primary -> distance, then -score, then label
    order = np.lexsort((regions, -score[1:], dist[1:]))
    return int(regions[order[0]])


def _signs(labels: np.ndarray, star: int) -> np.ndarray:
    signs = np.zeros(labels.shape, dtype=np.float32)
    signs[labels > 0] = -1.0
    signs[labels == star] = 1.0
    return signs


def inter_chunk_signs(
    norm_i: np.ndarray, norm_j: np.ndarray, tau: float = 0.3, connectivity: int = 8
) -> np.ndarray | None:
    """The sign map of Eq. 6 for ``c_i -> c_j`` from min-max normalised chunk maps.

    +1 on ``r*`` (the region of ``M_ci > tau`` closest to ``p(M_cj, tau)``), -1 on the
    other regions, 0 elsewhere. ``None`` (skip the pair) when ``M_ci`` has no region or
    ``M_cj`` has no point above ``tau``. With a single region the map is +1 on it: Eq. 6's
    suppression term is empty and the loss only raises ``r*``.
    """
    n_regions, labels = isolated_regions(norm_i, tau, connectivity)
    points = points_above(norm_j, tau)
    if n_regions == 0 or not points.any():
        return None
    star = closest_region(labels, n_regions, points, tie_scores=np.asarray(norm_j))
    return _signs(labels, star)


def _per_region_mean(signs: np.ndarray) -> np.ndarray:
    """Scale the +1 (``r*``) and -1 (other regions) entries so each sums to +-1."""
    out = signs.copy()
    for value in (1.0, -1.0):
        where = signs == value
        if where.any():
            out[where] = value / where.sum()
    return out


class _Geometry:
    """Per-chunk regions and distance maps of a batch, each computed once."""

    def __init__(self, norm: np.ndarray, tau: float, connectivity: int) -> None:
        self.norm, self.tau, self.connectivity = norm, tau, connectivity
        self._regions: dict[int, tuple[int, np.ndarray]] = {}
        self._sq: dict[int, np.ndarray | None] = {}

    def regions(self, row: int) -> tuple[int, np.ndarray]:
        if row not in self._regions:
            self._regions[row] = isolated_regions(self.norm[row], self.tau, self.connectivity)
        return self._regions[row]

    def sq_dist(self, row: int) -> np.ndarray | None:
        if row not in self._sq:
            points = points_above(self.norm[row], self.tau)
            self._sq[row] = squared_distance_to(points) if points.any() else None
        return self._sq[row]

    def signs(self, ri: int, rj: int) -> np.ndarray | None:
        n_regions, labels = self.regions(ri)
        sq = self.sq_dist(rj)
        if n_regions == 0 or sq is None:
            return None
        star = closest_region(labels, n_regions, sq == 0, self.norm[rj], sq_dist=sq)
        return _signs(labels, star)
