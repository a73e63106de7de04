"""Chunk-consistency losses of Lee et al. 2023 (Eqs. 3-6) and the box / semi losses (Sec. 3.4).

All functions are pure functions over tensors. ``maps`` are Grad-CAMs, one per unit (a
word, or a WordPiece position), differentiable when computed with ``create_graph=True``;
half-precision maps are cast to float32 here (safe under autocast), float64 is kept. A
chunk is a list of unit indices into the unit axis of the maps:

- per-position Grad-CAM maps ``[T, L, h, w]`` (``wsris.methods.chunk.gradcam``, position 0 is
  ``[CLS]``) go with ``ChunkBatch.position_chunks`` (``wsris.blocks.noun_chunks``): pairs in
  Eq. 3 are then pairs of WordPieces, including pieces of the same word;
- maps pooled per word with :func:`pool_word_maps` go with ``ChunkBatch.word_chunks``:
  pairs are pairs of words, as Eq. 3 is written. Identical when no word is split.

Batch functions take ``include`` (e.g. ``ChunkBatch.include``, False for negative
captions, Sec. 4.3). An excluded sample contributes exactly nothing: its per-sample loss
is 0, it passes no gradient, and ``reduction="mean"`` averages over the included samples
only, so adding an excluded sample to a batch does not change the loss. A sample that is
included but has no chunk pair counts as a sample with loss 0 (Eq. 3's empty sum).

Normalisations (the paper leaves them open; see ``docs/chunk_losses.md``):

- ``L_intra`` per sample is Eq. 3 literally: the SUM over chunks and over unordered pairs
  of ``1 - cos``; the batch loss is the mean over included samples, like ``L_ALBEF``'s
  per-sample mean, so ``lambda1`` does not depend on the batch size.
- ``L_inter`` per sample is the MEAN over neighbouring chunk pairs, both directions (the
  paper: "compute Eq 6 for all the neighbouring chunks and average them"; its "without
  loss of generality" for which chunk plays ``c_i`` reads as: apply it both ways). It is
  computed on min-max normalised chunk maps (differentiably, so a model cannot lower the
  loss by scaling its Grad-CAMs up) and, with ``pixel_reduction="mean"`` (default), the
  sums of Eq. 6 are divided by ``h * w`` so a pair's loss lies in [-1, 1] whatever the
  grid; ``pixel_reduction="sum"`` keeps Eq. 6's plain sums. Both reward growing ``r*``:
  every location added to it lowers the loss. ``pixel_reduction="region"`` (a departure,
  see ``lab/training_notes.md``) averages each term over its own region instead,
  ``-mean_{r*} M~ + mean_{R minus r*} M~``, so ``r*`` is raised without being widened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from .regions import (
    _Geometry,
    _per_region_mean,
    closest_region,
    inter_chunk_signs,
    isolated_regions,
    points_above,
    set_distance,
    squared_distance_to,
)

Reduction = Literal["mean", "sum", "none"]
PixelReduction = Literal["mean", "sum", "region"]
PIXEL_REDUCTIONS: tuple[str, ...] = get_args(PixelReduction)

COS_EPS = 1e-8
RANGE_EPS = 1e-12


# --------------------------------------------------------------------------- helpers


def _include_mask(include: Sequence[bool] | torch.Tensor | None, n: int) -> list[bool]:
    if include is None:
        return [True] * n
    mask = [bool(x) for x in (include.tolist() if torch.is_tensor(include) else include)]
    if len(mask) != n:
        raise ValueError(f"include has {len(mask)} entries for a batch of {n}")
    return mask


def _f32(x: torch.Tensor) -> torch.Tensor:
    """float32 for half / integer inputs; float32 and float64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _zeros(ref: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` zeros on ``ref``'s device, attached to its graph (so ``backward`` works)."""
    zeros = ref.new_zeros(n)
    return zeros + ref.sum() * 0.0 if ref.requires_grad else zeros


def _consecutive(n_chunks: int) -> list[tuple[int, int]]:
    """Default adjacency, as ``wsris.blocks.noun_chunks.chunk_adjacency``: ``(k, k+1)``."""
    return [(k, k + 1) for k in range(max(n_chunks - 1, 0))]


def _reduce(per_sample: torch.Tensor, include: list[bool], reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "mean":
        return per_sample.sum() / max(sum(include), 1)
    raise ValueError(f"unknown reduction {reduction!r}; expected mean, sum or none")


def _units(chunk: Sequence[int], n_units: int) -> list[int]:
    """Deduplicated unit indices of a chunk, checked against the unit axis."""
    out: list[int] = []
    for u in chunk:
        u = int(u)
        if not 0 <= u < n_units:
            raise IndexError(f"chunk unit {u} out of range for {n_units} maps")
        if u not in out:
            out.append(u)
    return out


def _cosine(a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """Row-wise cosine similarity; 0 (and no gradient) where a row's norm is <= eps."""
    na, nb = a.norm(dim=1), b.norm(dim=1)
    cos = (a * b).sum(1) / (na.clamp_min(eps) * nb.clamp_min(eps))
    valid = (na > eps) & (nb > eps)
    return torch.where(valid, cos, torch.zeros_like(cos))


def pool_word_maps(maps: torch.Tensor, word_ids: Sequence[Sequence[int | None]]) -> torch.Tensor:
    """Average per-position maps ``[T, L, h, w]`` over each word's WordPieces.

    ``word_ids`` is ``TextBatch.word_ids``. Returns ``[T, W, h, w]`` with ``W`` the largest
    word count; word ``i`` of text ``t`` is ``out[t, i]`` (zeros past a text's last word).
    """
    if maps.dim() != 4 or len(word_ids) != maps.shape[0]:
        raise ValueError("expected maps [T, L, h, w] and one word_ids row per text")
    n_words = max(max((w for w in row if w is not None), default=-1) + 1 for row in word_ids)
    n_words = max(n_words, 1)
    maps = _f32(maps)
    assign = np.zeros((maps.shape[0], n_words, maps.shape[1]), dtype=np.float64)
    for t, row in enumerate(word_ids):
        for p, w in enumerate(row[: maps.shape[1]]):
            if w is not None:
                assign[t, w, p] = 1.0
    assign /= np.maximum(assign.sum(-1, keepdims=True), 1.0)
    weights = torch.from_numpy(assign).to(device=maps.device, dtype=maps.dtype)
    return torch.einsum("tnl,tlxy->tnxy", weights, maps)


# --------------------------------------------------------------------------- L_intra


def intra_chunk_loss_batch(
    maps: torch.Tensor,
    chunks: Sequence[Sequence[Sequence[int]]],
    include: Sequence[bool] | torch.Tensor | None = None,
    reduction: Reduction = "mean",
    eps: float = COS_EPS,
) -> torch.Tensor:
    """Eq. 3 for a batch: ``maps [B, n, h, w]``, ``chunks[b]`` = chunks of sample ``b``.

    Per sample: ``sum_chunks sum_{i<j in chunk} (1 - cos(vec M_i, vec M_j))``; a chunk of
    one unit has no pair and adds 0. Cosine of an (almost) all-zero map is undefined: a
    map whose norm is <= ``eps`` is treated as orthogonal to every map (distance 1, a
    constant without gradient), since it locates nothing its chunk-mates locate.
    ``reduction``: ``mean`` over included samples (default), ``sum``, or ``none`` ([B]).
    """
    if maps.dim() != 4:
        raise ValueError(f"expected maps [B, n, h, w], got {tuple(maps.shape)}")
    batch, n_units = maps.shape[:2]
    if len(chunks) != batch:
        raise ValueError(f"{len(chunks)} chunk lists for a batch of {batch}")
    inc = _include_mask(include, batch)
    flat = _f32(maps.reshape(batch * n_units, -1))
    first: list[int] = []
    second: list[int] = []
    owner: list[int] = []
    for b in range(batch):
        if not inc[b]:
            continue
        for chunk in chunks[b]:
            units = _units(chunk, n_units)
            for x in range(len(units)):
                for y in range(x + 1, len(units)):
                    first.append(b * n_units + units[x])
                    second.append(b * n_units + units[y])
                    owner.append(b)
    per_sample = _zeros(flat, batch)
    if owner:
        dev = flat.device
        i = torch.tensor(first, device=dev)
        j = torch.tensor(second, device=dev)
        dist = 1.0 - _cosine(flat[i], flat[j], eps)
        per_sample = per_sample.index_add(0, torch.tensor(owner, device=dev), dist)
    return _reduce(per_sample, inc, reduction)


def intra_chunk_loss(
    word_maps: torch.Tensor, chunks: Sequence[Sequence[int]], eps: float = COS_EPS
) -> torch.Tensor:
    """Eq. 3 for one sample: ``word_maps [n, h, w]``; returns the scalar sum over pairs.

    Identical maps give 0; pairwise orthogonal (e.g. disjoint non-negative) maps give the
    number of pairs. See :func:`intra_chunk_loss_batch` for the zero-map convention.
    """
    if word_maps.dim() != 3:
        raise ValueError(f"expected word_maps [n, h, w], got {tuple(word_maps.shape)}")
    return intra_chunk_loss_batch(word_maps[None], [chunks], reduction="sum", eps=eps)


# --------------------------------------------------------------------------- L_inter


def chunk_maps(word_maps: torch.Tensor, chunks: Sequence[Sequence[int]]) -> torch.Tensor:
    """``M_c = mean_{w in c} M_w`` for each chunk: ``[n, h, w]`` -> ``[n_chunks, h, w]``."""
    if word_maps.dim() != 3:
        raise ValueError(f"expected word_maps [n, h, w], got {tuple(word_maps.shape)}")
    if not chunks:
        return word_maps.new_zeros(0, *word_maps.shape[1:])
    return torch.stack([_f32(word_maps[_units(c, word_maps.shape[0])]).mean(0) for c in chunks])


def minmax_normalize(maps: torch.Tensor, eps: float = RANGE_EPS) -> torch.Tensor:
    """Min-max normalise each map of ``[..., h, w]`` to [0, 1], differentiably.

    A constant map (range <= ``eps``) becomes all zeros.
    """
    flat = _f32(maps.flatten(-2))
    lo = flat.amin(-1, keepdim=True)
    rng = flat.amax(-1, keepdim=True) - lo
    out = (flat - lo) / rng.clamp_min(eps)
    out = torch.where(rng > eps, out, torch.zeros_like(out))
    return out.reshape(maps.shape)


def inter_chunk_loss_batch(
    maps: torch.Tensor,
    chunks: Sequence[Sequence[Sequence[int]]],
    adjacency: Sequence[Sequence[tuple[int, int]]] | None = None,
    include: Sequence[bool] | torch.Tensor | None = None,
    tau: float = 0.3,
    symmetric: bool = True,
    pixel_reduction: PixelReduction = "mean",
    reduction: Reduction = "mean",
    connectivity: int = 8,
) -> torch.Tensor:
    """Eqs. 4-6 for a batch: ``maps [B, n, h, w]``, ``chunks[b]`` = chunks of sample ``b``.

    For each neighbouring pair ``(i, j)`` of ``adjacency[b]`` (default: consecutive
    chunks) and, with ``symmetric``, also ``(j, i)``:

    1. chunk maps ``M_c`` = mean of their units' maps, min-max normalised (``M~``);
    2. regions ``R`` = 8-connected components of ``M~_ci > tau`` (OpenCV); points
       ``p(M_cj, tau)`` = locations with ``M~_cj > tau`` (both thresholds on the
       normalised maps, the paper's ``tau = 0.3``);
    3. ``r*`` = region with the smallest closest-pair squared distance to the points;
    4. pair loss ``(-sum_{k in r*} M~_ci^k + sum_{k in R minus r*} M~_ci^k)``, divided by
       ``h * w`` when ``pixel_reduction="mean"``; with ``"region"`` each sum is divided
       by the size of its own set (``r*``, ``R minus r*``).

    Steps 2-3 run without gradient (numpy / OpenCV); step 4 is differentiable in the maps.
    Pairs are skipped when a chunk map is constant (no region / no point). Per sample the
    loss is the mean over its evaluated pairs (0 if none); ``reduction`` as in
    :func:`intra_chunk_loss_batch`.
    """
    if maps.dim() != 4:
        raise ValueError(f"expected maps [B, n, h, w], got {tuple(maps.shape)}")
    if not 0.0 <= tau < 1.0:
        raise ValueError(f"tau must be in [0, 1) for min-max normalised maps, got {tau}")
    if pixel_reduction not in PIXEL_REDUCTIONS:
        raise ValueError(f"unknown pixel_reduction {pixel_reduction!r}")
    batch, n_units, h, w = maps.shape
    if len(chunks) != batch or (adjacency is not None and len(adjacency) != batch):
        raise ValueError("need one chunk list (and adjacency list) per sample")
    inc = _include_mask(include, batch)
    flat = _f32(maps.reshape(batch * n_units, h * w))

    row_of: dict[tuple[int, int], int] = {}
    src: list[int] = []
    dst: list[int] = []
    weight: list[float] = []
    pairs: list[tuple[int, int, int]] = []  # (sample, chunk row i, chunk row j)

    def row(b: int, k: int) -> int:
        if (b, k) not in row_of:
            units = _units(chunks[b][k], n_units)
            if not units:
                raise ValueError(f"chunk {k} of sample {b} is empty")
            row_of[(b, k)] = len(row_of)
            for u in units:
                src.append(b * n_units + u)
                dst.append(row_of[(b, k)])
                weight.append(1.0 / len(units))
        return row_of[(b, k)]

    for b in range(batch):
        if not inc[b]:
            continue
        n_chunks = len(chunks[b])
        adj = _consecutive(n_chunks) if adjacency is None else adjacency[b]
        for i, j in adj:
            if i == j or not (0 <= i < n_chunks and 0 <= j < n_chunks):
                raise IndexError(f"bad chunk pair {(i, j)} for {n_chunks} chunks (sample {b})")
            for a, c in [(i, j), (j, i)] if symmetric else [(i, j)]:
                pairs.append((b, row(b, a), row(b, c)))

    per_sample = _zeros(flat, batch)
    if pairs:
        dev = flat.device
        cmaps = flat.new_zeros(len(row_of), h * w).index_add(
            0,
            torch.tensor(dst, device=dev),
            flat[torch.tensor(src, device=dev)]
            * torch.tensor(weight, device=dev, dtype=flat.dtype)[:, None],
        )
        norm = minmax_normalize(cmaps.reshape(-1, h, w)).reshape(-1, h * w)
        norm_np = norm.detach().cpu().numpy().reshape(-1, h, w)
        signs: list[np.ndarray] = []
        rows: list[int] = []
        owners: list[int] = []
        geometry = _Geometry(norm_np, tau, connectivity)
        for b, ri, rj in pairs:
            s = geometry.signs(ri, rj)
            if s is None:
                continue
            if pixel_reduction == "region":
                s = _per_region_mean(s)
            signs.append(s.reshape(-1))
            rows.append(ri)
            owners.append(b)
        if rows:
            sign_t = torch.from_numpy(np.stack(signs)).to(dev, norm.dtype)
            pair_loss = -(sign_t * norm[torch.tensor(rows, device=dev)]).sum(1)
            if pixel_reduction == "mean":
                pair_loss = pair_loss / (h * w)
            owner_t = torch.tensor(owners, device=dev)
            totals = per_sample.index_add(0, owner_t, pair_loss)
            counts = norm.new_zeros(batch).index_add(0, owner_t, norm.new_ones(len(owners)))
            per_sample = totals / counts.clamp_min(1.0)
    return _reduce(per_sample, inc, reduction)


def inter_chunk_loss(
    maps: torch.Tensor,
    chunks: Sequence[Sequence[int]] | None = None,
    adjacency: Sequence[tuple[int, int]] | None = None,
    tau: float = 0.3,
    symmetric: bool = True,
    pixel_reduction: PixelReduction = "mean",
    connectivity: int = 8,
) -> torch.Tensor:
    """Eqs. 4-6 for one sample; returns the mean over evaluated chunk pairs (0 if none).

    ``maps [n, h, w]`` are word (or position) maps grouped by ``chunks``; with
    ``chunks=None`` each map already is a chunk map ``M_c``. ``adjacency`` defaults to
    consecutive chunks. See :func:`inter_chunk_loss_batch`.
    """
    if maps.dim() != 3:
        raise ValueError(f"expected maps [n, h, w], got {tuple(maps.shape)}")
    if chunks is None:
        chunks = [[k] for k in range(maps.shape[0])]
    return inter_chunk_loss_batch(
        maps[None],
        [chunks],
        None if adjacency is None else [adjacency],
        tau=tau,
        symmetric=symmetric,
        pixel_reduction=pixel_reduction,
        reduction="sum",
        connectivity=connectivity,
    )


# --------------------------------------------------------------------------- L_box, L_semi


def box_mask(
    boxes: torch.Tensor | Sequence[Sequence[float]], height: int, width: int
) -> torch.Tensor:
    """Filled-box masks ``[B, height, width]`` (float 0/1) from ``[B, 4]`` pixel boxes.

    Boxes are ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive, clipped to the image. The
    paper turns boxes into masks with BBAM, which has no public package here: the filled
    box is the stand-in pseudo mask (a documented departure).
    """
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    ys = torch.arange(height, dtype=torch.float32)[None, :, None] + 0.5
    xs = torch.arange(width, dtype=torch.float32)[None, None, :] + 0.5
    inside_y = (ys >= b[:, 1, None, None]) & (ys < b[:, 3, None, None])
    inside_x = (xs >= b[:, 0, None, None]) & (xs < b[:, 2, None, None])
    return (inside_y & inside_x).float()


def mask_cosine_loss(
    maps: torch.Tensor,
    targets: torch.Tensor,
    include: Sequence[bool] | torch.Tensor | None = None,
    reduction: Reduction = "mean",
    eps: float = COS_EPS,
) -> torch.Tensor:
    """``1 - cos(vec M_final, vec Y)`` per sample (Sec. 3.4), shared by box and semi.

    ``maps [B, h, w]`` (or ``[h, w]``) are the final localisation maps ``M_final``;
    ``targets [B, H, W]`` (or ``[H, W]``) are masks (bool or float in [0, 1]). Targets of
    another size are resized to the map grid with area interpolation (the fraction of
    each cell inside the mask: a soft target). A zero map or empty target gives distance
    1 with no gradient. ``include`` selects the samples that have a target (e.g. the
    labelled fraction for ``L_semi``); ``mean`` averages over them.
    """
    single = maps.dim() == 2
    if single:
        maps, targets = maps[None], targets[None]
    if maps.dim() != 3 or targets.dim() != 3 or targets.shape[0] != maps.shape[0]:
        raise ValueError(
            f"expected maps [B, h, w] and targets [B, H, W], got {tuple(maps.shape)} "
            f"and {tuple(targets.shape)}"
        )
    batch, h, w = maps.shape
    maps = _f32(maps)
    tgt = targets.to(device=maps.device, dtype=maps.dtype)
    if tgt.shape[-2:] != (h, w):
        tgt = F.interpolate(tgt[:, None], size=(h, w), mode="area")[:, 0]
    inc = _include_mask(include, batch)
    dist = 1.0 - _cosine(maps.reshape(batch, -1), tgt.reshape(batch, -1), eps)
    keep = torch.tensor(inc, device=maps.device)
    per_sample = torch.where(keep, dist, torch.zeros_like(dist))
    if single and reduction == "none":
        return per_sample[0]
    return _reduce(per_sample, inc, reduction)


def box_loss(
    maps: torch.Tensor,
    box_masks: torch.Tensor,
    include: Sequence[bool] | torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``L_box = cos(M_final, Y_box)`` (Sec. 3.4); ``box_masks`` e.g. from :func:`box_mask`."""
    return mask_cosine_loss(maps, box_masks, include, reduction)


def semi_loss(
    maps: torch.Tensor,
    masks: torch.Tensor,
    labelled: Sequence[bool] | torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``L_semi = cos(M_final, Y_full)`` on the samples with a full label (Sec. 3.4)."""
    return mask_cosine_loss(maps, masks, labelled, reduction)


__all__ = [
    "box_loss",
    "box_mask",
    "chunk_maps",
    "closest_region",
    "inter_chunk_loss",
    "inter_chunk_loss_batch",
    "inter_chunk_signs",
    "intra_chunk_loss",
    "intra_chunk_loss_batch",
    "isolated_regions",
    "mask_cosine_loss",
    "minmax_normalize",
    "points_above",
    "pool_word_maps",
    "semi_loss",
    "set_distance",
    "squared_distance_to",
]
