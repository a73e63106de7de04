"""Perturbed-text ITM negatives: one content word swapped for another of its kind."""

from __future__ import annotations

import random

import torch
from chunk_helpers import tiny_chunk_objective

from wsris.data.shapes import COLOURS
from wsris.methods.chunk.text_negatives import SHAPES_REF_SWAPS, build_swap_table, perturb_caption

TABLE = build_swap_table(SHAPES_REF_SWAPS)


def test_directions_swap_with_their_opposite_only_and_colours_with_every_other():
    assert TABLE["left"] == ("right",)
    assert TABLE["leftmost"] == ("rightmost",)
    assert TABLE["above"] == ("below", "under")  # "below" and "under" are synonyms
    assert TABLE["under"] == ("above",)
    assert set(TABLE["red"]) == set(COLOURS) - {"red"}
    assert "the" not in TABLE and "not" not in TABLE


def test_a_perturbed_caption_differs_in_exactly_one_word_of_the_same_class():
    rng = random.Random(0)
    text = "the small blue star left of the green square"
    for _ in range(200):
        out = perturb_caption(text, TABLE, rng)
        assert out is not None
        old, new = text.split(), out.split()
        changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert len(changed) == 1
        assert new[changed[0]] in TABLE[old[changed[0]]]


def test_same_seed_same_swap_and_no_swappable_word_gives_none():
    text = "the red circle above the large hexagon"
    a = [perturb_caption(text, TABLE, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert perturb_caption("the shape that is not a", TABLE, random.Random(0)) is None


def test_objective_adds_one_negative_per_swappable_caption_and_trains():
    torch.manual_seed(0)
    obj, data = tiny_chunk_objective(text_negatives=True)
    batch = obj.collate([data[i] for i in range(8)])
    texts = batch.text.texts + ["the shape that is not a"]  # the last has nothing to swap
    img = obj.model.encode_image(batch.pixel_values).tokens
    index = torch.cat([batch.image_index, batch.image_index[:1]])
    logits = obj._perturbed_logits(texts, img, index)
    swappable = sum(any(w in TABLE for w in t.lower().split()) for t in texts)
    assert swappable == len(texts) - 1
    assert logits.shape == (swappable, 2)
    out = obj(batch)
    out["loss"].backward()
    emb = obj.model.text_encoder.embeddings.word_embeddings.weight.grad
    assert emb is not None and emb.abs().sum() > 0
