"""Shatter and Gather model: shapes, parameter count, and the paper's equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsris.methods.sag.model import (
    GroupInteraction,
    SagConfig,
    SagModel,
    SlotAttentionBlock,
    sine_position_encoding_2d,
)
from wsris.registry import build_model


def micro(**kw) -> SagConfig:
    """The tiny preset with a 100-word vocabulary (fast to build)."""
    return SagConfig.tiny(text_vocab_size=100, **kw)


def inputs(b_img: int = 2, b_txt: int = 3, cfg: SagConfig | None = None):
    cfg = cfg or micro()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b_img, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(1, cfg.text_vocab_size, (b_txt, 7), generator=g)
    ids[:, 0] = 1
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    return x, ids, mask


@pytest.fixture(scope="module")
def model() -> SagModel:
    torch.manual_seed(0)
    return SagModel(micro()).eval()


def test_forward_shapes(model: SagModel) -> None:
    cfg = model.config
    x, ids, mask = inputs(2, 3)
    out = model(x, ids, mask)
    k, n = cfg.num_slots, cfg.grid_size[0] * cfg.grid_size[1]
    assert cfg.grid_size == (16, 16)  # 64 px, conv stem of stride 4
    assert out.z.shape == (2, 3, cfg.dim)
    assert torch.allclose(out.z.norm(dim=-1), torch.ones(2, 3), atol=1e-5)
    assert out.text.shape == (3, cfg.dim)
    assert out.a_fuse.shape == (2, 3, k)
    assert torch.allclose(out.a_fuse.sum(-1), torch.ones(2, 3), atol=1e-5)
    assert out.a_slot.shape == (2, k, n) and out.a_slot.dtype == torch.float32
    assert out.slots.shape == (2, k, cfg.dim)
    width = cfg.vision_width + 3 * cfg.patch_size**2  # vit+pixels
    assert out.recon.shape == out.recon_target.shape == (2, n, width)
    assert not out.recon_target.requires_grad
    assert out.recon_splits == [("vit", cfg.vision_width), ("pixels", 48)]
    assert float(out.logit_scale.detach()) == pytest.approx(10.0)


def test_config_round_trip_and_builder() -> None:
    cfg = micro(num_groups=2, slots_per_group=3)
    d = cfg.to_dict()
    assert SagConfig.from_dict(d) == cfg
    assert isinstance(build_model("sag", d), SagModel)
    with pytest.raises(ValueError, match="unknown field"):
        SagConfig.from_dict({**d, "nonsense": 1})
    with pytest.raises(ValueError, match="slot_type"):
        SagConfig.from_dict({**d, "slot_type": "gaussian"})


def _lin(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def expected_parameters(c: SagConfig) -> int:
    """Parameter count written out from the stated sizes (independent of the modules)."""
    w, p, n = c.vision_width, c.patch_size, (c.image_size // c.patch_size) ** 2
    hid = int(c.vision_mlp_ratio * w)
    vit_block = 2 * 2 * w + _lin(w, 3 * w) + _lin(w, w) + _lin(w, hid) + _lin(hid, w)
    vit = _lin(3 * p * p, w) + w + (n + 1) * w + c.vision_layers * vit_block + 2 * w
    h, i = c.text_width, c.text_intermediate
    bert_layer = 4 * _lin(h, h) + _lin(h, i) + _lin(i, h) + 2 * 2 * h
    bert = (c.text_vocab_size + c.text_max_positions + c.text_type_vocab_size) * h + 2 * h
    bert += c.text_layers * bert_layer
    d, ff = c.dim, c.mlp_ratio * c.dim
    mlp = _lin(d, ff) + _lin(ff, d)
    proj = _lin(w, d) + _lin(h, d)
    slots = 2 * c.num_groups * d  # mu and log-sigma per Gaussian
    agg = 3 * 2 * d + 3 * _lin(d, c.agg_hidden, False) + _lin(c.agg_hidden, d) + mlp
    inter = c.interaction_layers * (
        2 * 2 * d + 3 * _lin(d, c.interaction_hidden, False) + _lin(c.interaction_hidden, d) + mlp
    )
    head = _lin(d, d) + 2 * d
    fusion = 3 * 2 * d + 3 * _lin(d, c.fusion_hidden, False) + _lin(c.fusion_hidden, d) + mlp
    dh = c.decoder_hidden
    decoder = _lin(d, dh) + (c.decoder_layers - 2) * _lin(dh, dh) + _lin(dh, w + 1)
    return vit + bert + proj + slots + agg + inter + head + fusion + decoder


def test_paper_parameter_count_on_meta() -> None:
    cfg = SagConfig.paper()
    assert (cfg.num_groups, cfg.slots_per_group, cfg.iterations, cfg.dim) == (18, 2, 6, 512)
    with torch.device("meta"):
        m = SagModel(cfg)
    count = sum(p.numel() for p in m.parameters())
    assert count == expected_parameters(cfg) == 144_113_409
    # published sizes of the backbones: timm ViT-S/16@384 (22,196,584 with its 1000-class
    # head of 385,000) and bert-base-uncased BertModel (109,482,240 with its pooler of
    # 590,592)
    assert sum(p.numel() for p in m.image_encoder.parameters()) == 22_196_584 - 385_000
    assert sum(p.numel() for p in m.text_encoder.parameters()) == 109_482_240 - 590_592


def test_sine_position_encoding_by_hand() -> None:
    pos = sine_position_encoding_2d(1, 2, 4)  # [2, 4]: (sin y, cos y, sin x, cos x)
    two_pi = 2 * math.pi
    y = 1 / (1 + 1e-6) * two_pi
    for j, xv in enumerate((1 / (2 + 1e-6) * two_pi, 2 / (2 + 1e-6) * two_pi)):
        # channel pairs use 10000^(2*floor(i/2)/2) = 1 for i in {0, 1}
        want = torch.tensor([math.sin(y), math.cos(y), math.sin(xv), math.cos(xv)])
        assert torch.allclose(pos[j], want, atol=1e-5)


def test_slot_attention_softmax_over_slots(model: SagModel) -> None:
    x, _, _ = inputs(2, 1)
    with torch.no_grad():
        image = model.encode_image(x)
        keys, values = model.aggregation.project_inputs(image.features)
        slots0 = model.slot_init(2, "sample")
        _, attn = model.aggregation(slots0, keys, values)  # [B, H, K, N] per head
        out = model.discover(image, "sample")
    assert torch.allclose(attn.sum(dim=2), torch.ones_like(attn.sum(dim=2)), atol=1e-5)
    assert torch.allclose(out.a_slot.sum(dim=1), torch.ones(2, out.a_slot.shape[-1]), atol=1e-5)
    # not normalised over pixels: the rows are not distributions over N
    assert not torch.allclose(out.a_slot.sum(-1), torch.ones_like(out.a_slot.sum(-1)))


def test_aggregation_matches_equations_3_and_4() -> None:
    """One head: A = softmax_slots(k(x) q(S)^T / sqrt(Dh)), update = l1-normalised
    columns of A (transposed) times v(x) W_o, plus S; then the residual MLP."""
    torch.manual_seed(1)
    blk = SlotAttentionBlock(dim=8, hidden=6, heads=1, mlp_ratio=2, dropout=0.0).eval()
    x = torch.randn(1, 5, 8)
    s = torch.randn(1, 3, 8)
    with torch.no_grad():
        k, v = blk.project_inputs(x)
        new, attn = blk(s, k, v)
        kx = blk.to_k(blk.norm_inputs(x))[0]  # [N, Dh]
        vx = blk.to_v(blk.norm_inputs(x))[0]
        qs = blk.to_q(blk.norm_slots(s))[0]  # [K, Dh]
        m = kx @ qs.T / math.sqrt(6)  # [N, K]
        a = torch.exp(m) / torch.exp(m).sum(dim=1, keepdim=True)  # softmax over slots
        norm = a / a.sum(dim=0, keepdim=True)  # l1 over pixels (columns)
        hat = blk.to_out(norm.T @ vx) + s[0]
        want = hat + blk.mlp(blk.norm_mlp(hat))
    assert torch.allclose(attn[0, 0], a.T, atol=1e-5)
    assert torch.allclose(new[0], want, atol=1e-5)


def test_interaction_stays_within_groups() -> None:
    torch.manual_seed(2)
    cfg = micro(num_groups=3, slots_per_group=2)
    inter = GroupInteraction(cfg).eval()
    s = torch.randn(1, 6, cfg.dim)
    s2 = s.clone()
    s2[:, 0:2] += torch.randn(1, 2, cfg.dim)  # perturb group 0 only
    with torch.no_grad():
        a, b = inter(s), inter(s2)
    assert not torch.allclose(a[:, 0:2], b[:, 0:2])
    assert torch.equal(a[:, 2:], b[:, 2:])
    # weights are shared: a group moved to another position gives the same output
    swapped = torch.cat([s[:, 2:4], s[:, 0:2], s[:, 4:]], dim=1)
    with torch.no_grad():
        c = inter(swapped)
    assert torch.allclose(c[:, 0:2], a[:, 2:4], atol=1e-6)


def test_slot_init_types_and_modes() -> None:
    m = SagModel(micro(num_groups=3, slots_per_group=2))
    init = m.slot_init
    mean = init(2, "mean")
    assert mean.shape == (2, 6, m.config.dim)
    assert torch.equal(mean[0, 0], init.mu[0, 0]) and torch.equal(mean[0, 1], init.mu[0, 0])
    assert torch.equal(mean[0, 2], init.mu[0, 1])  # group-major layout
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(init(1, "sample", g1), init(1, "sample", g2))
    # noise scale is the square root of the variance exp(log_sigma)
    with torch.no_grad():
        init.log_sigma.fill_(math.log(4.0))
    draws = init(4000, "sample", torch.Generator().manual_seed(0)) - mean[:1]
    assert draws.std().item() == pytest.approx(2.0, rel=0.02)

    rnd = SagModel(micro(slot_type="random")).slot_init
    assert rnd.mu.shape == (1, 1, 64)
    with pytest.raises(ValueError, match="identical"):
        rnd(1, "mean")
    q = SagModel(micro(slot_type="query")).slot_init
    assert torch.equal(q(2, "sample")[1], q.queries)


def test_mean_init_is_deterministic(model: SagModel) -> None:
    x, ids, mask = inputs(1, 2)
    with torch.no_grad():
        _, a = model.encode_slots(x, "mean")
        _, b = model.encode_slots(x, "mean")
        _, c = model.encode_slots(x, "sample", num_samples=3, seed=7)
        _, d = model.encode_slots(x, "sample", num_samples=3, seed=7)
        _, e = model.encode_slots(x, "sample", num_samples=3, seed=8)
    assert torch.equal(a.slots, b.slots) and torch.equal(a.a_slot, b.a_slot)
    assert torch.equal(c.a_slot, d.a_slot) and c.a_slot.shape[0] == 3
    assert not torch.allclose(c.a_slot, e.a_slot)
    with pytest.raises(ValueError):
        model.encode_slots(x, "mean", num_samples=2)


def test_fusion_all_pairs_and_equations_6_7(model: SagModel) -> None:
    x, ids, mask = inputs(2, 3)
    with torch.no_grad():
        _, slots = model.encode_slots(x, "mean")
        text = model.encode_text(ids, mask)
        both = model.fuse(slots.slots, text)
        single = model.fuse(slots.slots[1:2], text[2:3])
        # Eq. 7 by hand, heads averaged
        f = model.fusion
        nh, hd = f.attn.heads, f.attn.head_dim
        q = f.attn.to_q(f.norm_query(text[2])).view(nh, hd)
        k = f.attn.to_k(f.norm_context(slots.slots[1])).view(-1, nh, hd)
        m = torch.einsum("hd,khd->hk", q, k) / math.sqrt(hd)
        a_fuse = m.softmax(dim=-1).mean(0)
    assert both.z.shape == (2, 3, model.config.dim)
    assert torch.allclose(both.z[1, 2], single.z[0, 0], atol=1e-5)
    assert torch.allclose(both.a_fuse[1, 2], a_fuse, atol=1e-5)
    assert torch.allclose(both.a_fuse[1, 2], single.a_fuse[0, 0], atol=1e-6)


def test_text_feature_and_normalisation() -> None:
    x, ids, mask = inputs(1, 2)
    paper_like = SagModel(micro(text_norm="none", learnable_logit_scale=False)).eval()
    with torch.no_grad():
        t = paper_like.encode_text(ids, mask)
        cls = paper_like.text_encoder(ids, mask)[:, 0]
    assert torch.allclose(t, paper_like.text_proj(cls))
    assert float(paper_like.logit_scale()) == pytest.approx(10.0)
    assert "log_logit_scale" not in dict(paper_like.named_parameters())
    normed = SagModel(micro()).eval()
    with torch.no_grad():
        assert torch.allclose(normed.encode_text(ids, mask).norm(dim=-1), torch.ones(2))


def test_text_head_starts_as_the_identity_and_reads_only_real_tokens() -> None:
    x, ids, mask = inputs(1, 3)
    torch.manual_seed(0)
    headed = SagModel(micro(text_norm="none", text_head_layers=2)).eval()
    with torch.no_grad():
        cls = headed.text_encoder(ids, mask)[:, 0]
        # zeroed residuals: at the start the feature is the projected [CLS], as without
        torch.testing.assert_close(headed.encode_text(ids, mask), headed.text_proj(cls))
        for p in headed.text_head.parameters():
            p.normal_(0, 0.2, generator=torch.Generator().manual_seed(p.numel()))
        t = headed.encode_text(ids, mask)
        assert not torch.allclose(t, headed.text_proj(cls), atol=1e-3)  # now reads the words
        # text 0 has two padding tokens (mask[0, 5:] = 0): other ids there change nothing,
        # while a real token of text 1 does
        other = ids.clone()
        other[0, 5:] = 7
        other[1, 3] = 7 if ids[1, 3] != 7 else 8
        t2 = headed.encode_text(other, mask)
    torch.testing.assert_close(t2[0], t[0])
    assert not torch.allclose(t2[1], t[1], atol=1e-4)
    torch.testing.assert_close(t2[2], t[2])
    with pytest.raises(ValueError, match="text_head_layers"):
        micro(text_head_layers=-1).validate()


def test_decoder_mixing_weights() -> None:
    torch.manual_seed(3)
    m = SagModel(micro(recon_target="vit", decoder_pos="learned")).eval()
    slots = torch.randn(2, m.config.num_slots, m.config.dim)
    with torch.no_grad():
        recon, alpha = m.decoder(slots, (16, 16))
    assert recon.shape == (2, 256, m.config.vision_width)
    assert torch.allclose(alpha.sum(1), torch.ones(2, 256), atol=1e-5)
    # one slot: the weights are all 1 and the output is the MLP's feature channels
    with torch.no_grad():
        one, _ = m.decoder(slots[:, :1], (16, 16))
        pos = m.decoder.position((16, 16), slots.device)
        feat = m.decoder.mlp(slots[:, :1, None] + pos[None, None])[:, 0, :, :-1]
    assert torch.allclose(one, feat, atol=1e-5)
    attn_mix = SagModel(micro(decoder_mixing="attention")).eval()
    x, ids, mask = inputs(1, 1)
    with torch.no_grad():
        out = attn_mix(x, ids, mask)
    assert out.recon.shape == out.recon_target.shape


def test_autocast_keeps_attention_in_float32(model: SagModel) -> None:
    x, ids, mask = inputs(1, 2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, ids, mask, slot_init="mean")
    assert out.a_slot.dtype == torch.float32 and out.a_fuse.dtype == torch.float32
    assert torch.allclose(out.a_slot.sum(1), torch.ones_like(out.a_slot.sum(1)), atol=1e-4)
    assert torch.isfinite(out.z).all()


def test_gradients_reach_every_trained_part() -> None:
    from wsris.methods.sag.losses import c3_loss, reconstruction_loss

    torch.manual_seed(4)
    m = SagModel(micro()).train()
    x, ids, mask = inputs(2, 2)
    out = m(x, ids, mask)
    loss = c3_loss(out.z, out.text, out.logit_scale) + reconstruction_loss(
        out.recon, out.recon_target, out.recon_splits
    )
    loss.backward()
    for name in (
        "aggregation.to_q.weight",
        "fusion.attn.to_k.weight",
        "slot_init.mu",
        "image_proj.weight",
        "decoder.mlp.0.weight",
        "log_logit_scale",
        "image_encoder.blocks.0.attn.qkv.weight",
    ):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # the loss is the mean squared error written out by hand, and it is not already zero
    # (a random decoder cannot reconstruct its target)
    by_hand = ((out.recon.detach().float() - out.recon_target.detach().float()) ** 2).mean()
    assert F.mse_loss(out.recon, out.recon_target).item() == pytest.approx(by_hand.item())
    assert by_hand.item() > 1e-6
