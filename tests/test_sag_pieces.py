"""The slot_split='pieces' departure: a slot whose hard mask falls apart into connected
pieces becomes one entity per piece; every other slot is left exactly as it was; images
with different entity counts are padded and the padding takes no part in fusion."""

from __future__ import annotations

import pytest
import torch

from wsris.errors import InvalidInputError
from wsris.methods.sag.layers import SlotOutput
from wsris.methods.sag.model import SagConfig, SagModel
from wsris.methods.sag.slot_pieces import slot_pieces


@pytest.fixture(scope="module")
def model() -> SagModel:
    torch.manual_seed(0)
    return SagModel(SagConfig.tiny(text_vocab_size=100)).eval()


def _slots(model: SagModel, owners: list[torch.Tensor]) -> SlotOutput:
    """Hand-made discovery results on 6x6 grids: in image b, token j goes to slot
    owners[b][j] (its A^slot 0.7 there, the rest shared), random states and values."""
    k, n = 3, owners[0].numel()
    a = torch.full((len(owners), k, n), 0.3 / (k - 1))
    for b, owner in enumerate(owners):
        a[b, owner.flatten(), torch.arange(n)] = 0.7
    g = torch.Generator().manual_seed(0)
    d = model.config.dim
    heads = model.aggregation.heads
    values = torch.randn(len(owners), heads, n, model.aggregation.head_dim, generator=g)
    state = torch.randn(len(owners), k, d, generator=g)
    return SlotOutput(model._head(state), a, (6, 6), state, values)


def _two_blobs() -> torch.Tensor:
    owner = torch.zeros(6, 6, dtype=torch.long)  # slot 0: the background
    owner[0:2, 0:2] = 1  # slot 1: two blobs, far apart
    owner[4:6, 4:6] = 1
    owner[0:2, 4:6] = 2  # slot 2: one blob
    return owner


def test_a_slot_in_two_pieces_becomes_two_entities_and_the_rest_stay(model):
    owner = _two_blobs()
    slots = _slots(model, [owner])
    with torch.no_grad():
        out = model.split_slots(slots)
    assert out.slots.shape == (1, 4, model.config.dim)
    assert out.mask.tolist() == [[True] * 4]
    # unsplit slots: the same state, feature and map, in order
    torch.testing.assert_close(out.state[0, 0], slots.state[0, 0])
    torch.testing.assert_close(out.slots[0, 0], slots.slots[0, 0])
    torch.testing.assert_close(out.a_slot[0, 0], slots.a_slot[0, 0])
    torch.testing.assert_close(out.slots[0, 3], slots.slots[0, 2])
    # the pieces' maps are the slot's, cut along its pieces, and add up to it
    first, second = out.a_slot[0, 1].reshape(6, 6), out.a_slot[0, 2].reshape(6, 6)
    assert (first > 0).sum() == 4 and first[0:2, 0:2].min() > 0
    assert (second > 0).sum() == 4 and second[4:6, 4:6].min() > 0
    where = (owner == 1).flatten()
    torch.testing.assert_close((out.a_slot[0, 1] + out.a_slot[0, 2])[where],
                               slots.a_slot[0, 1][where])
    # each piece: one more aggregation update from its own tokens (Eq. 3-4 by hand)
    agg = model.aggregation
    w = slots.a_slot[0, 1] * (first.flatten() > 0)
    update = ((w / w.sum()) @ slots.values[0]).flatten()
    state = slots.state[0, 1] + agg.to_out(update)
    state = state + agg.mlp(agg.norm_mlp(state))
    torch.testing.assert_close(out.state[0, 1], state)
    assert not torch.allclose(out.slots[0, 1], out.slots[0, 2])


def test_pieces_below_the_minimum_join_the_largest_piece():
    owner = torch.zeros(6, 6, dtype=torch.long)
    owner[0:3, 0:3] = 1  # 9 tokens
    owner[5, 5] = 1  # a stray token of the same slot
    a = torch.nn.functional.one_hot(owner.flatten(), 3).T.float()[None]
    kept = slot_pieces(a, (6, 6), min_tokens=2)
    split = slot_pieces(a, (6, 6), min_tokens=1)
    assert kept.valid.sum() == 3 and not kept.split.any()
    assert split.valid.sum() == 4 and split.split.sum() == 2
    with pytest.raises(ValueError):
        slot_pieces(a, (5, 7))


def test_a_batch_is_padded_and_padding_gets_no_attention(model):
    plain = torch.zeros(6, 6, dtype=torch.long)
    plain[0:2, 0:2] = 1
    plain[4:6, 0:2] = 2  # three slots, none split
    slots = _slots(model, [_two_blobs(), plain])
    text = torch.randn(2, model.config.dim)
    with torch.no_grad():
        both = model.split_slots(slots)
        alone = model.split_slots(_slots(model, [plain]))
        fused = model.fuse(both.slots, text, both.mask)
    assert both.mask.tolist() == [[True] * 4, [True, True, True, False]]
    assert both.a_slot[1, 3].abs().sum() == 0
    assert fused.a_fuse[1, :, 3].abs().max() == 0  # the padded entity
    torch.testing.assert_close(fused.a_fuse.sum(-1), torch.ones(2, 2))
    # the unsplit image's entities fuse as its three slots do without padding
    with torch.no_grad():
        ref = model.fuse(slots.slots[1:], text)
    torch.testing.assert_close(fused.z[1], ref.z[0])
    torch.testing.assert_close(fused.a_fuse[1, :, :3], ref.a_fuse[0])
    assert alone.slots.shape[1] == 3


def test_training_forward_fuses_pieces_and_backpropagates():
    torch.manual_seed(0)
    m = SagModel(SagConfig.tiny(text_vocab_size=100, slot_split="pieces"))
    x = torch.rand(2, 3, m.config.image_size, m.config.image_size)
    ids = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])
    out = m(x, ids, (ids > 0).long())
    assert out.z.shape[:2] == (2, 2)
    assert out.a_fuse.shape[-1] == out.a_slot.shape[1] >= m.config.num_slots
    out.z.sum().backward()
    assert m.aggregation.to_out.weight.grad is not None


def test_the_option_is_checked_and_runs_end_to_end(model):
    from wsris.methods.sag.pipeline import localize
    from wsris.text import TextBatch

    x = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    ids = torch.tensor([[1, 5, 6, 2]])
    text = TextBatch(["x"], ids, torch.ones_like(ids), [["a"] * 4], [[None, 0, 1, None]])
    with pytest.raises(InvalidInputError):
        localize(model, x, text, None, {"slot_split": "halves"})
    outs = localize(model, x, text, None, {"slot_split": "pieces", "num_samples": 2})
    assert outs[0].heatmap.shape == (model.config.image_size // model.config.patch_size,) * 2
    assert len(outs[0].stages["a_slot_samples"]) == 2
    assert outs[0].stages["slot_split"] == "pieces"
    whole = localize(model, x, text, None, {"slot_split": "none"})
    assert whole[0].stages["a_slot"].shape[0] == model.config.num_slots


def test_entity_context_starts_as_identity_and_ignores_padding():
    torch.manual_seed(0)
    m = SagModel(SagConfig.tiny(text_vocab_size=100, entity_context_layers=1)).eval()
    plain = torch.zeros(6, 6, dtype=torch.long)
    plain[0:2, 0:2] = 1
    plain[4:6, 0:2] = 2
    slots = _slots(m, [_two_blobs(), plain])
    with torch.no_grad():
        split = m.split_slots(slots)
        start = m.entities(slots, "pieces")
        torch.testing.assert_close(start.slots, split.slots)  # zeroed residuals
        for p in m.entity_context.parameters():  # a trained layer: no longer the identity
            p.add_(0.1 * torch.randn_like(p))
        both = m.entities(slots, "pieces")
        second = SlotOutput(slots.slots[1:], slots.a_slot[1:], slots.grid, slots.state[1:],
                            slots.values[1:])
        alone = m.entities(second, "pieces")
    assert not torch.allclose(both.slots, split.slots)
    # image 1 alone has no padding; in the batch its fourth row is padding, which no real
    # entity may attend to
    torch.testing.assert_close(both.slots[1, :3], alone.slots[0])


def test_each_image_of_a_batch_is_split_on_its_own_and_pieces_come_in_raster_order():
    """The batch is labelled in one strip per slot: no piece may cross from one image
    into the next, and an image's result must not depend on the batch around it."""
    g = torch.Generator().manual_seed(3)
    owners = torch.randint(0, 3, (5, 7, 7), generator=g)
    owners[1] = 0
    owners[1, 6, :] = 1  # a piece on the last row, above image 2's first row
    owners[2, 0, :] = 1  # ... and one on image 2's first row: touching only across images
    a = torch.nn.functional.one_hot(owners.flatten(1), 3).permute(0, 2, 1).float()
    together = slot_pieces(a, (7, 7), min_tokens=1)
    for i in range(5):
        alone = slot_pieces(a[i : i + 1], (7, 7), min_tokens=1)
        count = int(alone.valid.sum())
        assert int(together.valid[i].sum()) == count
        for name in ("source", "inside", "split"):
            assert torch.equal(getattr(together, name)[i, :count], getattr(alone, name)[0])
        for slot in together.source[i][together.split[i]].unique():
            pieces = together.inside[i][(together.source[i] == slot) & together.split[i]]
            firsts = [int(p.nonzero()[0]) for p in pieces]
            assert firsts == sorted(firsts)
    # the stray rows of slot 1 are whole entities of their own images, not one piece
    assert not together.split[1].any() and together.valid[1].sum() == 3
