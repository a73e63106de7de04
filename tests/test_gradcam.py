"""Grad-CAM (Eq. 1): formula by hand, efficient path vs a naive full backward."""

from __future__ import annotations

import pytest
import torch
from chunk_helpers import text_batch, tiny_model

from wsris.methods.chunk.gradcam import (
    compute_gradcam,
    default_word_mask,
    gradcam_maps,
    sentence_map,
    word_maps,
)

LAYER = 2  # tiny model: fusion layers 2 and 3 (words get no gradient in the last one)


def test_gradcam_maps_by_hand():
    # 2 heads, 2 text positions ([CLS], one word), image [CLS] + 2x2 patches.
    att = torch.tensor(
        [[[[0.2, 0.1, 0.2, 0.3, 0.2], [0.6, 0.1, 0.1, 0.1, 0.1]],
          [[0.0, 0.4, 0.4, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]]]]
    )  # fmt: skip
    grad = torch.tensor(
        [[[[9.0, 1.0, -1.0, 2.0, 0.0], [5.0, 3.0, 1.0, -2.0, 4.0]],
          [[9.0, -1.0, 1.0, 1.0, 2.0], [5.0, 1.0, 1.0, 1.0, 1.0]]]]
    )  # fmt: skip
    out = gradcam_maps(att, grad)
    # position 0: head0 [0.1, 0, 0.6, 0], head1 [0, 0.4, 0.1, 0.2] -> mean
    # position 1: head0 [0.3, 0.1, 0, 0.4], head1 [0.2, 0.2, 0.2, 0.2] -> mean
    expected = torch.tensor([[[[0.05, 0.2], [0.35, 0.1]], [[0.25, 0.15], [0.1, 0.3]]]])
    torch.testing.assert_close(out, expected)
    # the image [CLS] column (huge gradient) is ignored; padded positions are zero
    padded = gradcam_maps(att, grad, attention_mask=torch.tensor([[1, 0]]))
    torch.testing.assert_close(padded[0, 1], torch.zeros(2, 2))
    torch.testing.assert_close(padded[0, 0], expected[0, 0])
    # gradient clamped, attention not: a negative gradient never contributes
    assert (gradcam_maps(att, -grad.abs()) == 0).all()


def test_word_and_sentence_maps_by_hand():
    maps = torch.arange(2 * 4 * 1 * 2, dtype=torch.float32).reshape(2, 4, 1, 2)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    words = default_word_mask(mask)
    assert words.tolist() == [[False, True, True, False], [False, True, True, True]]
    assert torch.equal(word_maps(maps), maps[:, 1:])
    avg = sentence_map(maps, words)
    # text 0: positions 1, 2 -> ([2,3] + [4,5]) / 2 ; text 1: positions 1..3 of 8..15
    torch.testing.assert_close(avg, torch.tensor([[[3.0, 4.0]], [[12.0, 13.0]]]))
    with_cls = sentence_map(maps, mask)  # ALBEF's grounding evaluation
    torch.testing.assert_close(with_cls, torch.tensor([[[2.0, 3.0]], [[11.0, 12.0]]]))


def _naive_gradcam(model, pixels, text, layer):
    """Full forward with grad everywhere, full backward, attention and its gradient
    captured with hooks, then Eq. 1 written out again here."""
    model.zero_grad(set_to_none=True)
    store = {}
    module = model.text_encoder.encoder.layer[layer].crossattention.self
    original = module.probs

    def probs_with_hook(*args, **kwargs):
        probs, value = original(*args, **kwargs)
        store["attention"] = probs
        probs.register_hook(lambda g: store.__setitem__("grad", g))
        return probs, value

    module.probs = probs_with_hook
    try:
        image = model.encode_image(pixels).tokens
        hidden = model.encode_text(text.input_ids, text.attention_mask)
        logits = model.itm_logits(model.fuse(hidden, text.attention_mask, image).hidden)
        logits[:, 1].sum().backward()
    finally:
        del module.probs
    a, g = store["attention"].detach(), store["grad"]
    t, heads, length, n = a.shape
    side = int(round((n - 1) ** 0.5))
    cam = torch.zeros(t, length, side, side)
    for i in range(t):
        for p in range(length):
            if text.attention_mask[i, p] == 0:
                continue
            acc = torch.zeros(n - 1)
            for h in range(heads):
                acc += a[i, h, p, 1:] * torch.relu(g[i, h, p, 1:])
            cam[i, p] = (acc / heads).reshape(side, side)
    # the naive backward did reach the image encoder
    assert model.visual_encoder.patch_embed.proj.weight.grad is not None
    return cam, logits.detach()


def test_efficient_equals_naive_full_backward():
    model = tiny_model()
    pixels = torch.randn(1, 3, 32, 32)
    text = text_batch([4, 2, 6], max_len=9)
    naive, naive_logits = _naive_gradcam(model, pixels, text, LAYER)
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        image = model.encode_image(pixels).tokens
    out = compute_gradcam(model, image, text.input_ids, text.attention_mask, layer=LAYER)
    diff = (out.maps - naive).abs().max().item()
    print(f"efficient vs naive Grad-CAM: max |diff| = {diff:.3e}, max map {naive.max():.3e}")
    assert naive[:, 1:].max() > 1e-3  # the comparison is not between zeros (word maps too)
    assert diff < 1e-5
    torch.testing.assert_close(out.itm_logits, naive_logits, atol=1e-5, rtol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient
    assert not out.maps.requires_grad


def test_efficient_path_differentiates_nothing_below_the_target():
    model = tiny_model()
    text = text_batch([3, 5])
    grad_mode: dict[str, bool] = {}

    def record(name):
        return lambda module, args: grad_mode.__setitem__(name, torch.is_grad_enabled())

    layers = model.text_encoder.encoder.layer
    hooks = [layer.attention.register_forward_pre_hook(record(f"text{i}.self"))
             for i, layer in enumerate(layers)]  # fmt: skip
    hooks += [layers[i].crossattention.self.query.register_forward_pre_hook(
        record(f"text{i}.cross.query")) for i in (2, 3)]  # fmt: skip
    hooks.append(layers[2].crossattention.output.register_forward_pre_hook(record("text2.out")))
    # image tokens that require grad: the Grad-CAM backward must still not reach the ViT
    image = model.encode_image(torch.randn(1, 3, 32, 32)).tokens
    compute_gradcam(model, image, text.input_ids, text.attention_mask, layer=2)
    for h in hooks:
        h.remove()
    below = ("text0.self", "text1.self", "text2.self", "text2.cross.query")
    above = ("text2.out", "text3.self", "text3.cross.query")
    assert {k: grad_mode[k] for k in below} == dict.fromkeys(below, False)
    assert {k: grad_mode[k] for k in above} == dict.fromkeys(above, True)
    assert all(p.grad is None for p in model.parameters())


def test_texts_in_one_batch_equal_texts_alone():
    model = tiny_model()
    text = text_batch([4, 2, 6], max_len=9)
    with torch.no_grad():
        image = model.encode_image(torch.randn(1, 3, 32, 32)).tokens
    together = compute_gradcam(model, image, text.input_ids, text.attention_mask, layer=2)
    for t in range(3):
        n = int(text.attention_mask[t].sum())
        alone = compute_gradcam(
            model, image, text.input_ids[t : t + 1, :n], text.attention_mask[t : t + 1, :n], 2
        )
        torch.testing.assert_close(together.maps[t, :n], alone.maps[0], atol=1e-6, rtol=1e-5)
        assert (together.maps[t, n:] == 0).all()


def test_create_graph_is_differentiable_and_equal():
    model = tiny_model()
    text = text_batch([3, 4])
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = compute_gradcam(
            model, model.encode_image(pixels).tokens, text.input_ids, text.attention_mask
        )
    image = model.encode_image(pixels).tokens
    out = compute_gradcam(model, image, text.input_ids, text.attention_mask, create_graph=True)
    torch.testing.assert_close(out.maps, plain.maps, atol=1e-6, rtol=1e-5)
    assert out.maps.requires_grad
    out.maps.pow(2).sum().backward()
    for name in ("visual_encoder.patch_embed.proj.weight",
                 "text_encoder.embeddings.word_embeddings.weight",
                 "text_encoder.encoder.layer.3.crossattention.self.value.weight",
                 "itm_head.weight"):  # fmt: skip
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_default_layer_and_bad_layer():
    model = tiny_model()
    text = text_batch([2])
    with torch.no_grad():
        image = model.encode_image(torch.randn(1, 3, 32, 32)).tokens
    default = compute_gradcam(model, image, text.input_ids, text.attention_mask)
    explicit = compute_gradcam(model, image, text.input_ids, text.attention_mask, layer=2)
    torch.testing.assert_close(default.maps, explicit.maps)
    with pytest.raises(ValueError, match="no cross-attention"):
        compute_gradcam(model, image, text.input_ids, text.attention_mask, layer=1)


def test_under_autocast_maps_are_float32():
    model = tiny_model()
    text = text_batch([3])
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = compute_gradcam(
            model, model.encode_image(pixels).tokens, text.input_ids, text.attention_mask
        )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            image = model.encode_image(pixels).tokens
        out = compute_gradcam(model, image, text.input_ids, text.attention_mask)
    assert out.maps.dtype == torch.float32
    assert torch.isfinite(out.maps).all()
    corr = torch.corrcoef(torch.stack([out.maps.flatten(), ref.maps.flatten()]))[0, 1]
    assert corr > 0.9
