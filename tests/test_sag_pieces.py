"""The slot_split='pieces' departure: a slot whose hard mask falls apart into connected
pieces becomes one slot per piece; every other slot is left exactly as it was."""

from __future__ import annotations

import pytest
import torch

from wsris.errors import InvalidInputError
from wsris.models.sag import SagConfig, SagModel
from wsris.models.sag_layers import SlotOutput


@pytest.fixture(scope="module")
def model() -> SagModel:
    torch.manual_seed(0)
    return SagModel(SagConfig.tiny(text_vocab_size=100)).eval()


def _slots(model: SagModel, owner: torch.Tensor) -> SlotOutput:
    """A hand-made discovery result on a 6x6 grid: pixel j goes to slot owner[j] (its
    A^slot 0.7 there, the rest shared), random states and values."""
    k, n = 3, owner.numel()
    a = torch.full((k, n), 0.3 / (k - 1))
    a[owner.flatten(), torch.arange(n)] = 0.7
    g = torch.Generator().manual_seed(0)
    d = model.config.dim
    heads = model.aggregation.heads
    values = torch.randn(1, heads, n, model.aggregation.head_dim, generator=g)
    state = torch.randn(1, k, d, generator=g)
    return SlotOutput(model._head(state), a[None], (6, 6), state, values)


def test_a_slot_in_two_pieces_becomes_two_slots_and_the_rest_stay(model):
    owner = torch.zeros(6, 6, dtype=torch.long)  # slot 0: the background
    owner[0:2, 0:2] = 1  # slot 1: two blobs, far apart
    owner[4:6, 4:6] = 1
    owner[0:2, 4:6] = 2  # slot 2: one blob
    slots = _slots(model, owner)
    with torch.no_grad():
        (out,) = model.split_slots(slots)
    assert out.slots.shape == (1, 4, model.config.dim)
    # unsplit slots: the same state, feature and map, in order
    torch.testing.assert_close(out.state[0, 0], slots.state[0, 0])
    torch.testing.assert_close(out.slots[0, 0], slots.slots[0, 0])
    torch.testing.assert_close(out.a_slot[0, 0], slots.a_slot[0, 0])
    # the pieces' maps are the slot's, cut along its pieces, and add up to it
    first, second = out.a_slot[0, 1].reshape(6, 6), out.a_slot[0, 2].reshape(6, 6)
    assert (first > 0).sum() == 4 and first[0:2, 0:2].min() > 0
    assert (second > 0).sum() == 4 and second[4:6, 4:6].min() > 0
    where = (owner == 1).flatten()
    torch.testing.assert_close((out.a_slot[0, 1] + out.a_slot[0, 2])[where],
                               slots.a_slot[0, 1][where])
    torch.testing.assert_close(out.slots[0, 3], slots.slots[0, 2])
    # each piece: one more aggregation update from its own pixels (Eq. 3-4 by hand)
    agg = model.aggregation
    w = slots.a_slot[0, 1] * (first.flatten() > 0)
    update = ((w / w.sum()) @ slots.values[0]).flatten()
    state = slots.state[0, 1] + agg.to_out(update)
    state = state + agg.mlp(agg.norm_mlp(state))
    torch.testing.assert_close(out.state[0, 1], state)
    assert not torch.allclose(out.slots[0, 1], out.slots[0, 2])


def test_pieces_below_the_minimum_join_the_largest_piece(model):
    owner = torch.zeros(6, 6, dtype=torch.long)
    owner[0:3, 0:3] = 1  # 9 tokens
    owner[5, 5] = 1  # a stray token of the same slot
    slots = _slots(model, owner)
    with torch.no_grad():
        (kept,) = model.split_slots(slots, min_tokens=2)  # one big piece: no split
        (split,) = model.split_slots(slots, min_tokens=1)
    assert kept.slots.shape[1] == 3 and torch.equal(kept.a_slot, slots.a_slot)
    assert split.slots.shape[1] == 4


def test_the_option_is_checked_and_runs_end_to_end(model):
    from wsris.methods.sag.pipeline import localize
    from wsris.text import TextBatch

    x = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    ids = torch.tensor([[1, 5, 6, 2]])
    text = TextBatch(["x"], ids, torch.ones_like(ids), [["a"] * 4], [[None, 0, 1, None]])
    with pytest.raises(InvalidInputError):
        localize(model, x, text, None, {"slot_split": "halves"})
    with pytest.raises(InvalidInputError):
        localize(model, x, text, None, {"slot_split": "pieces", "slot_split_min_tokens": 0})
    outs = localize(model, x, text, None, {"slot_split": "pieces", "num_samples": 2})
    assert outs[0].heatmap.shape == (model.config.image_size // model.config.patch_size,) * 2
    assert len(outs[0].stages["a_slot_samples"]) == 2
