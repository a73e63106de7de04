"""Which slots fall apart into connected pieces (the SaG ``slot_split: pieces`` departure).

Slot attention over the small models' features groups tokens by colour, so one slot often
holds two shapes of one colour; the 8-connected pieces of the slots' hard masks bind
objects far better (``scripts/slot_binding.py --components``). :func:`slot_pieces` finds
those pieces on the token grid; :meth:`wsris.models.sag.SagModel.split_slots` turns each
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
    entity. Entities keep the slots' order, a split slot's pieces in label order.
    """
    if min_tokens < 1:
        raise ValueError("min_tokens must be >= 1")
    b, k, n = a_slot.shape
    h, w = grid
    if h * w != n:
        raise ValueError(f"grid {grid} does not match {n} tokens")
    winners = a_slot.argmax(dim=1).reshape(b, h, w).cpu().numpy()
    rows: list[list[tuple[int, np.ndarray | None]]] = []
    for image in winners:
        entities: list[tuple[int, np.ndarray | None]] = []
        for slot in range(k):
            count, labels = cv2.connectedComponents((image == slot).astype(np.uint8),
                                                    connectivity=8)
            sizes = np.bincount(labels.ravel(), minlength=count)[1:]
            big = [i + 1 for i in range(count - 1) if sizes[i] >= min_tokens]
            if len(big) < 2:
                entities.append((slot, None))
                continue
            largest = max(big, key=lambda i: sizes[i - 1])
            small = [i for i in range(1, count) if i not in big]
            labels[np.isin(labels, small)] = largest
            entities += [(slot, (labels == i).reshape(-1)) for i in big]
        rows.append(entities)
    p = max(len(r) for r in rows)
    source = torch.zeros(b, p, dtype=torch.long)
    inside = torch.zeros(b, p, n, dtype=torch.bool)
    split = torch.zeros(b, p, dtype=torch.bool)
    valid = torch.zeros(b, p, dtype=torch.bool)
    for i, entities in enumerate(rows):
        for j, (slot, piece) in enumerate(entities):
            source[i, j], valid[i, j] = slot, True
            if piece is not None:
                inside[i, j], split[i, j] = torch.from_numpy(piece), True
    device = a_slot.device
    return SlotPieces(source.to(device), inside.to(device), split.to(device), valid.to(device))
