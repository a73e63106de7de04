"""Which slots fall apart into connected pieces (the SaG ``slot_split: pieces`` departure).

Slot attention over the small models' features groups tokens by colour, so one slot often
holds two shapes of one colour; the 8-connected pieces of the slots' hard masks bind
objects far better (``lab/scripts/slot_binding.py --components``). :func:`slot_pieces` finds
those pieces on the token grid; :meth:`wsris.methods.sag.model.SagModel.split_slots` turns each
piece into an entity of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


@dataclass
class SlotPieces:
    """The entities of a batch after splitting, padded to the largest count ``P``."""

    source: torch.Tensor  # [B, P] long: the slot each entity comes from (0 for padding)
    inside: torch.Tensor  # [B, P, N] bool: the entity's piece (split entities only)
    split: torch.Tensor  # [B, P] bool: a piece of a split slot (else the slot itself)
    valid: torch.Tensor  # [B, P] bool: a real entity (else padding)


def slot_pieces(a_slot: torch.Tensor, grid: tuple[int, int], min_tokens: int = 2) -> SlotPieces:
    """Split ``a_slot`` ``[B, K, N]`` (N = h * w) along the pieces of its hard masks.

    Each token goes to its most attending slot. A slot whose tokens form at least two
    8-connected pieces of ``min_tokens`` or more tokens becomes one entity per such piece
    (smaller pieces join its largest); every other slot, empty ones included, stays one
    entity. Entities keep the slots' order, a split slot's pieces in the raster order of
    their first token.
    """
    if min_tokens < 1:
        raise ValueError("min_tokens must be >= 1")
    b, k, n = a_slot.shape
    h, w = grid
    if h * w != n:
        raise ValueError(f"grid {grid} does not match {n} tokens")
    winners = a_slot.argmax(dim=1).reshape(b, h, w).cpu().numpy()
    # One connected-components call per slot for the whole batch: the images stacked in a
    # column with a blank row after each, so that no piece crosses from one image into the
    # next.
    strip = np.zeros((b, h + 1, w), np.uint8)
    rows: list[list[tuple[int, np.ndarray | None]]] = [[] for _ in range(b)]
    for slot in range(k):
        strip[:, :h] = winners == slot
        count, labels = cv2.connectedComponents(strip.reshape(b * (h + 1), w), connectivity=8)
        labels = labels.reshape(b, h + 1, w)[:, :h].reshape(b, n)
        sizes = np.bincount(labels.ravel(), minlength=count)
        image_of = np.zeros(count, np.int64)
        image_of[labels.ravel()] = np.repeat(np.arange(b), n)
        big = np.flatnonzero(sizes >= min_tokens)
        big = big[big > 0]  # 0: the background
        per_image = np.bincount(image_of[big], minlength=b)
        for i in range(b):
            if per_image[i] < 2:
                rows[i].append((slot, None))
        split_images = np.flatnonzero(per_image >= 2)
        for i in split_images:
            row = labels[i]
            mine = big[image_of[big] == i]
            # pieces below min_tokens join the slot's largest piece in this image
            small = (row > 0) & ~np.isin(row, mine)
            row = np.where(small, mine[np.argmax(sizes[mine])], row)
            first = np.array([np.argmax(row == c) for c in mine])
            mine = mine[np.argsort(first)]  # in raster order of their first token
            rows[i].extend((slot, row == c) for c in mine)
    p = max(len(r) for r in rows)
    source = np.zeros((b, p), np.int64)
    inside = np.zeros((b, p, n), bool)
    split = np.zeros((b, p), bool)
    valid = np.zeros((b, p), bool)
    for i, row_entities in enumerate(rows):
        for j, (slot, piece) in enumerate(row_entities):
            source[i, j], valid[i, j] = slot, True
            if piece is not None:
                inside[i, j], split[i, j] = piece, True
    device = a_slot.device
    return SlotPieces(*(torch.from_numpy(x).to(device) for x in (source, inside, split, valid)))
