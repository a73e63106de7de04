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
    img = obj.model.encode_image(batch.pixel_values).tokens
    logits = obj._perturbed_logits(batch.text.texts, None, img, batch.image_index)
    swappable = sum(any(w in TABLE for w in t.lower().split()) for t in batch.text.texts)
    assert swappable > 0
    assert logits.shape == (swappable, 2)
    out = obj(batch)
    out["loss"].backward()
    emb = obj.model.text_encoder.embeddings.word_embeddings.weight.grad
    assert emb is not None and emb.abs().sum() > 0


def test_with_the_filter_a_swap_that_still_fits_the_image_is_not_a_negative():
    from wsris.training.false_negatives import batch_scenes, may_describe

    torch.manual_seed(0)
    obj, data = tiny_chunk_objective(text_negatives=True, filter_false_negatives=True)
    samples = [data[i] for i in range(16)]
    batch = obj.collate(samples)
    obj.set_step(5)
    img = obj.model.encode_image(batch.pixel_values).tokens
    image_scenes = batch_scenes(obj.train_stages(), 5, batch)  # what forward passes
    logits = obj._perturbed_logits(batch.text.texts, image_scenes, img, batch.image_index)
    # the same swaps, drawn by hand with the objective's seed for this step
    rng = random.Random(int(obj.train_config.seed) * 1_000_003 + 5)
    swapped = [perturb_caption(t, TABLE, rng) for t in batch.text.texts]
    scenes = [data.scene(int(s.sample_id.split("/")[1])).objects for s in samples]
    kept = [t for t, sc in zip(swapped, scenes, strict=True)
            if t is not None and not may_describe(t, sc)]
    dropped = [t for t, sc in zip(swapped, scenes, strict=True)
               if t is not None and may_describe(t, sc)]
    assert dropped, "these scenes should give at least one swap that still fits"
    assert (0 if logits is None else len(logits)) == len(kept)
