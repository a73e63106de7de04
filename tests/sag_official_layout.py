"""A tiny model in the layout of the official SaG code, and files written the way its
``save_ckpt`` writes them. Written from the official names and shapes, not from the
converter's table."""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

# A tiny "official" model: ViT width 64 (one 64-dim head), patch 8,
# trained at 64 px but built for 80 px (grid 10x10, like the official 480-px build),
# BERT width 64, 2 layers, D = 32, 2 Gaussians x 3 slots, T = 3.
W, PATCH, DEPTH, GRID0 = 64, 8, 2, 10
H, LAYERS, VOCAB, POS, INTER = 64, 2, 50, 16, 128
D, AGG, LAT, CMA, KG, ITERS = 32, 64, 32, 64, 2, 3


def official_state_dict(
    seed: int = 0, positions: int = POS, vocab: int = VOCAB
) -> dict[str, torch.Tensor]:
    """Keys and shapes as the official modules name them (written from the official
    layout, not from the converter's table)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    sd: dict[str, torch.Tensor] = {}

    def linear(name: str, i: int, o: int, bias: bool = True) -> None:
        sd[f"{name}.weight"] = r(o, i)
        if bias:
            sd[f"{name}.bias"] = r(o)

    def ln(name: str, d: int) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = 1 + 0.1 * r(d), 0.1 * r(d)

    vit = "encoders.img_enc.img_backbone"
    sd[f"{vit}.cls_token"] = r(1, 1, W)
    sd[f"{vit}.pos_embed"] = r(1, 1 + GRID0 * GRID0, W)
    sd[f"{vit}.patch_embed.proj.weight"], sd[f"{vit}.patch_embed.proj.bias"] = (
        r(W, 3, PATCH, PATCH),
        r(W),
    )
    for b in range(DEPTH):
        ln(f"{vit}.blocks.{b}.norm1", W)
        linear(f"{vit}.blocks.{b}.attn.qkv", W, 3 * W)
        linear(f"{vit}.blocks.{b}.attn.proj", W, W)
        ln(f"{vit}.blocks.{b}.norm2", W)
        linear(f"{vit}.blocks.{b}.mlp.fc1", W, 4 * W)
        linear(f"{vit}.blocks.{b}.mlp.fc2", 4 * W, W)
    ln(f"{vit}.norm", W)
    linear(f"{vit}.head", W, 1000)
    linear("encoders.img_enc.spm_1x1", W, D)
    linear("encoders.img_enc.residual_fc", W, D)
    spm = "encoders.img_enc.set_pred_module"
    ln(f"{spm}.residual_norm", D)
    linear(f"{spm}.fc", D, 1024)
    agg = f"{spm}.agg"
    sd[f"{agg}.queries.slots_mu"] = r(1, KG, D)
    sd[f"{agg}.queries.slots_log_sigma"] = r(1, KG, D)
    # ONE set of weights, stored under every iteration index (cache_fn sharing)
    shared: dict[str, torch.Tensor] = {}
    for part, d_in in (("0.norm", D), ("0.norm_context", D), ("2.norm", D)):
        shared[f"{part}.weight"], shared[f"{part}.bias"] = 1 + 0.1 * r(d_in), 0.1 * r(d_in)
    for x in "qkv":
        shared[f"0.fn.to_{x}.weight"] = r(AGG, D)
    shared["0.fn.to_out.0.weight"], shared["0.fn.to_out.0.bias"] = r(D, AGG), r(D)
    shared["2.fn.net.0.weight"], shared["2.fn.net.0.bias"] = r(4 * D, D), r(4 * D)
    shared["2.fn.net.3.weight"], shared["2.fn.net.3.bias"] = r(D, 4 * D), r(D)
    for part in ("4.0.0.norm", "4.0.2.norm"):
        shared[f"{part}.weight"], shared[f"{part}.bias"] = 1 + 0.1 * r(D), 0.1 * r(D)
    for x in "qkv":
        shared[f"4.0.0.fn.to_{x}.weight"] = r(LAT, D)
    shared["4.0.0.fn.to_out.0.weight"], shared["4.0.0.fn.to_out.0.bias"] = r(D, LAT), r(D)
    shared["4.0.2.fn.net.0.weight"], shared["4.0.2.fn.net.0.bias"] = r(4 * D, D), r(4 * D)
    shared["4.0.2.fn.net.3.weight"], shared["4.0.2.fn.net.3.bias"] = r(D, 4 * D), r(D)
    for i in range(ITERS):
        for k, v in shared.items():
            sd[f"{agg}.agg_blocks.{i}.{k}"] = v
    linear(f"{agg}.last_layer.1", D, D)
    bert = "encoders.txt_enc.bert"
    sd[f"{bert}.embeddings.word_embeddings.weight"] = r(vocab, H)
    sd[f"{bert}.embeddings.position_embeddings.weight"] = r(positions, H)
    sd[f"{bert}.embeddings.token_type_embeddings.weight"] = r(2, H)
    ln(f"{bert}.embeddings.LayerNorm", H)
    sd[f"{bert}.embeddings.position_ids"] = torch.arange(positions)[None]
    for layer in range(LAYERS):
        p = f"{bert}.encoder.layer.{layer}"
        for x in ("query", "key", "value"):
            linear(f"{p}.attention.self.{x}", H, H)
        linear(f"{p}.attention.output.dense", H, H)
        ln(f"{p}.attention.output.LayerNorm", H)
        linear(f"{p}.intermediate.dense", H, INTER)
        linear(f"{p}.output.dense", INTER, H)
        ln(f"{p}.output.LayerNorm", H)
    linear(f"{bert}.pooler.dense", H, H)
    linear("encoders.txt_enc.linear", H, D)
    ln("cma.attn.norm", D)
    ln("cma.attn.norm_context", D)
    for x in "qkv":
        sd[f"cma.attn.fn.to_{x}.weight"] = r(CMA, D)
    linear("cma.attn.fn.to_out.0", CMA, D)
    ln("cma.ff.norm", D)
    linear("cma.ff.fn.net.0", D, 4 * D)
    linear("cma.ff.fn.net.3", 4 * D, D)
    sd["decoder.pos_emb.row_embed.weight"] = r(50, D // 2)
    sd["decoder.pos_emb.col_embed.weight"] = r(50, D // 2)
    linear("decoder.mlp.0", D, D)
    linear("decoder.mlp.2", D, D)
    linear("decoder.mlp.4", D, D)
    linear("decoder.mlp.6", D, W + 1)
    return sd




def official_args(**overrides: Any) -> argparse.Namespace:
    """The ``args`` of an official run: the flags of ``train_eval_unc.sh`` with this tiny
    model's sizes, and option.py's defaults for a selection of the flags it leaves out.
    ``img_backbone`` names a ViT with 16 heads (4-dim heads at width 64): a value that no
    assumption gives, so a converted config shows whether it was read."""
    flags: dict[str, Any] = dict(
        data_name="coco", data_path="./data/refcoco_nopad/unc", data_split="train",
        vocab_path="/home/user/SaG/vocab/", log_dir="/home/user/SaG/logs/", log_step=200,
        word_dim=300, workers=4, crop_size=64, img_backbone="vit_large_patch8_384",
        embed_dim=D, margin=0.1, dropout=0.1, img_num_embeds=KG * 3, txt_num_embeds=1,
        img_finetune=True, txt_finetune=True, num_epochs=50, batch_size=32, grad_clip=0.1,
        weight_decay=1e-4, lr=1e-5, ckpt="", eval_on_gpu=True, warm_epoch=0,
        remark="publish_unc", wandb_group="pseudo_labelling", no_wandb=False,
        lr_scheduler="cosine", lr_milestones=None, lr_step_gamma=0.1, lr_step_size=20,
        warm_txt=False, warm_img=True, multi_gpu=False, sync_bn=True, fast_batch=False,
        num_texts=0, semi_hard_triplet=False, img_spm_lr_scale=1.0, txt_lr_scale=1.0,
        img_lr_scale=0.1, optimizer="adamw", amp=True, lr_warmup_iter=5000, bn_eval=False,
        agg_query_self_attns=0, agg_self_per_cross_attn=1, agg_self_before_cross_attn=0,
        agg_depth=ITERS, agg_cross_head=2, agg_cross_dim=AGG // 2, agg_residual=False,
        agg_latent_head=2, agg_latent_dim=LAT // 2, agg_last_fc=True, agg_input_dim=D,
        agg_query_dim=D, agg_pre_norm=True, agg_post_norm=False, agg_activation="gelu",
        agg_last_ln=True, agg_weight_sharing=True, agg_ff_mult=4.0, agg_xavier_init=False,
        agg_more_dropout=False, agg_thin_ff=False, agg_first_order=False, agg_pos_enc="sine",
        agg_gru=False, agg_cross_attn_type="slot", agg_gumbel_attn=False,
        agg_gumbel_last=False, agg_query_slot=False, agg_query_type="entity",
        cascade_factor=3, agg_var_scaling=1.0, decoder_normalizer="softmax",
        recon_decoder="mlp", decoder_self_attn=False, decoder_pos_enc="learned",
        slot_cond=False, txt_pooling="cls", txt_l2=False, img_res_pool="avg",
        text_no_dropout=False, pseudo_threshold=0.5, cma_heads=2, cma_head_dim=CMA // 2,
        cma_criterion="info_nce", cma_mining=None, cma_detach_target=True,
        cma_detach_img_target=False, cma_self_attn=False, use_aug=False, cma_last_fc=False,
        cma_qk_norm=False, cma_last_mlp=False, i_t_weight=0.0, info_temperature=1.0,
        gumbel_tau=1.0, cm_i_weight=1.0, seed=1, recon_weight=1.0, num_layers=DEPTH,
        recon_warm_epoch=0, wo_recon_epoch=0, amap_save=False, agg_1x1_mlp=False,
        info_txt_l2=False, pre_bertemb=False, eval_epoch=1, size_p_weight=0.0,
        size_gamma=0.01, size_penalty=5.0, save_head_map=False,
    )
    flags.update(overrides)
    return argparse.Namespace(**flags)


def save_like_official(
    path: Path,
    state: dict[str, torch.Tensor],
    args: Any = None,
    numpy1: bool = False,
    **extra: Any,
) -> Path:
    """Write ``path`` as the official ``save_ckpt`` does: ``args``, ``epoch``, ``iou`` (a
    NumPy float64 from the IoU sums), ``loss`` (an AverageMeter's average: a non-leaf
    tensor that requires grad) and ``model``. ``numpy1``: the scalar as NumPy 1.x pickles
    it (``numpy.core.multiarray.scalar``), by rewriting the pickle's global name."""
    inter, union = np.sum(np.ones((4, 4), bool)), np.sum(np.ones((5, 5), bool))
    iou = 0.0 + inter / union * (100 / 1)
    w = torch.ones(3, requires_grad=True)
    loss = (w * 2.5).sum() / (0.0001 + 3)
    ckpt = {"args": args, "epoch": 7, "iou": iou, "loss": loss, "model": state, **extra}
    if args is None:
        del ckpt["args"]
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    raw = buf.getvalue()
    # the spelling the installed NumPy wrote, turned into the one asked for
    spelling = {True: b"numpy.core.multiarray\nscalar", False: b"numpy._core.multiarray\nscalar"}
    written = spelling[int(np.__version__.split(".")[0]) < 2]
    if written != spelling[numpy1]:
        raw = _rename_global(raw, written, spelling[numpy1])
    path.write_bytes(raw)
    return path


def _rename_global(raw: bytes, old: bytes, new: bytes) -> bytes:
    """The same torch.save zip with one GLOBAL's name replaced in its pickle."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert old in data, "the pickle does not name the global to rename"
                data = data.replace(old, new)
            dst.writestr(info.filename, data)
    return out.getvalue()
