"""Entity discovery and fusion of a converted SaG model against the official code.

    PYTHONPATH=/path/to/einops-dir python scripts/sag_parity.py /path/to/kdwonn-SaG \
        [--json benchmarks/results/sag_parity.json]

Builds the official aggregation module (``model/aggregator.py``) and fusion layer
(``model/attention.py``'s ``TransformerLayer``) with the flags of ``train_eval_unc.sh``
(K = 36 as 12 x 3, T = 6, D = 512, 4 x 256 slot attention, 4 x 128 interaction, 4 x 256
fusion), random weights, CPU, float32, evaluation mode; maps its weights with the
converter's key table into a :class:`~wsris.methods.sag.model.SagModel`; feeds both the same
patch features, texts and slot noise, and reports the largest differences of ``A^slot``
(last iteration, heads averaged, read from the official ``attn_holder`` as its evaluation
does), the slots, ``A^fuse``, ``z`` and the masks (``A^fuse . A^slot`` resized to 480x640,
min-max normalised, ``>= 0.5``), for ``slot_attention_eps`` 1e-7 (converted models) and
1e-8 (the bundled models' value), on near-flat attention (the random initialisation) and
on peaky attention (the aggregation's and the fusion's query and key weights scaled by 10
and 8, the regime of a trained model).

The official code is imported from the folder given, never copied; it needs ``einops``
(not a wsris dependency: put it on PYTHONPATH for this script). Nothing in wsris or its
tests depends on this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# The official flags of train_eval_unc.sh that shape these modules.
K, GROUPS, T, D = 36, 12, 6, 512
FLAGS = dict(depth=T, input_channels=D, input_axis=2, num_latents=K, latent_dim=D,
             cross_heads=4, latent_heads=4, cross_dim_head=256, latent_dim_head=128,
             num_classes=D, attn_dropout=0.1, ff_dropout=0.1, weight_tie_layers=True,
             self_per_cross_attn=1, self_before_cross_attn=0, query_self_attn=0,
             pos_enc_type="sine", last_fc=True, norm_pre=True, norm_post=False,
             activation="gelu", last_ln=True, ff_mult=4, cross_attn_type="slot",
             query_type="entity", cascade_factor=K // GROUPS, var_scaling=1)
GRID, IMAGES, TEXTS, OUT_SIZE = (24, 24), 2, 3, (480, 640)


def official_modules(root: Path) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    sys.path.insert(0, str(root))
    from model.aggregator import Aggregator  # type: ignore[import-not-found]
    from model.attention import TransformerLayer  # type: ignore[import-not-found]

    agg = Aggregator(**FLAGS)
    norm = torch.nn.LayerNorm(D)  # set_pred_module.residual_norm
    cma = TransformerLayer(query_dim=D, ff_dim=D, context_dim=D, heads=4, dim_head=256,
                           dropout=0.1, ff_activation="gelu", last_norm=True, last_fc=False)
    return agg.eval(), norm.eval(), cma.eval()


def ours(eps: float, state: dict[str, torch.Tensor]) -> Any:
    from wsris.methods.sag.convert import map_official_keys
    from wsris.methods.sag.model import SagConfig, SagModel

    config = SagConfig.tiny(dim=D, agg_hidden=1024, agg_heads=4, interaction_hidden=512,
                            interaction_heads=4, mlp_ratio=4, num_groups=GROUPS,
                            slots_per_group=K // GROUPS, iterations=T, fusion_hidden=1024,
                            fusion_heads=4, text_norm="none", slot_attention_eps=eps)
    model = SagModel(config).eval()
    mapped, _, iterations = map_official_keys(state)
    assert iterations == T
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected, unexpected
    assert not [k for k in missing if k.startswith(("aggregation", "interaction", "fusion",
                                                    "slot_init", "slot_head"))], missing
    return model


def run_official(agg, norm, cma, feats, texts, noise):
    slot_maps: list[torch.Tensor] = []
    fuse_maps: list[torch.Tensor] = []
    h1 = agg.agg_blocks[0][0].fn.attn_holder.register_forward_hook(
        lambda m, i, o: slot_maps.append(o))
    h2 = cma.attn.fn.attn_holder.register_forward_hook(lambda m, i, o: fuse_maps.append(o))
    randn, cuda = torch.randn, torch.Tensor.cuda
    torch.randn = lambda *a, **k: noise.clone()  # the official Queries draws here
    torch.Tensor.cuda = lambda self, *a, **k: self  # and moves the noise to the GPU
    try:
        with torch.no_grad():
            x, _ = agg(feats)
            slots = norm(x)
            z = cma(texts[None].expand(feats.shape[0], -1, -1), context=slots)
            z = F.normalize(z, dim=-1)
    finally:
        torch.randn, torch.Tensor.cuda = randn, cuda
        h1.remove()
        h2.remove()
    a_slot = slot_maps[-1].reshape(feats.shape[0], 4, K, -1).mean(1)
    a_fuse = fuse_maps[-1].reshape(feats.shape[0], 4, texts.shape[0], K).mean(1)
    return {"a_slot": a_slot, "slots": slots, "a_fuse": a_fuse, "z": z}


def run_ours(model, feats, texts, seed):
    from wsris.methods.sag.layers import sine_position_encoding_2d
    from wsris.methods.sag.model import ImageFeatures

    pos = sine_position_encoding_2d(*GRID, D)
    flat = feats.flatten(1, 2)
    image = ImageFeatures(flat, flat + pos, GRID)
    with torch.no_grad():
        slots = model.discover(image, "sample", torch.Generator().manual_seed(seed))
        fused = model.fuse(slots.slots, texts)
    return {"a_slot": slots.a_slot, "slots": slots.slots, "a_fuse": fused.a_fuse, "z": fused.z}


def masks(a_slot: torch.Tensor, a_fuse: torch.Tensor, official: bool) -> torch.Tensor:
    """[B, T, H, W] bool: the official evaluation's resize (torchvision) or wsris's."""
    from torchvision.transforms import functional as TF

    from wsris.blocks.maps import upsample_normalised

    out = []
    for b in range(a_slot.shape[0]):
        for t in range(a_fuse.shape[1]):
            m = (a_fuse[b, t, :, None] * a_slot[b]).sum(0).reshape(*GRID)
            if official:
                up = TF.resize(m[None], list(OUT_SIZE))[0]
                up = (up - up.min()) / (up.max() - up.min() + 1e-9)
            else:
                up = upsample_normalised(m, OUT_SIZE)
            out.append(up >= 0.5)
    return torch.stack(out)


def compare(root: Path, peaky: bool, seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    agg, norm, cma = official_modules(root)
    if peaky:  # shared weights: named once, under iteration 0
        with torch.no_grad():
            params = dict(agg.named_parameters()) | {
                f"cma.{n}": p for n, p in cma.named_parameters()}
            for name, scale in (("agg_blocks.0.0.fn.to_q.weight", 10.0),
                                ("agg_blocks.0.0.fn.to_k.weight", 10.0),
                                ("cma.attn.fn.to_q.weight", 8.0),
                                ("cma.attn.fn.to_k.weight", 8.0)):
                params[name].mul_(scale)
    state = {f"encoders.img_enc.set_pred_module.agg.{k}": v for k, v in agg.state_dict().items()}
    state |= {f"encoders.img_enc.set_pred_module.residual_norm.{k}": v
              for k, v in norm.state_dict().items()}
    state |= {f"cma.{k}": v for k, v in cma.state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    feats = torch.randn(IMAGES, *GRID, D, generator=g)
    texts = torch.randn(TEXTS, D, generator=g)
    noise = torch.randn(IMAGES, K, D, generator=torch.Generator().manual_seed(seed + 2))
    ref = run_official(agg, norm, cma, feats, texts, noise)
    ref_masks = masks(ref["a_slot"], ref["a_fuse"], official=True)
    result: dict[str, Any] = {}
    for eps in (1e-7, 1e-8):
        got = run_ours(ours(eps, state), feats, texts, seed + 2)
        diffs = {k: float((got[k] - ref[k]).abs().max()) for k in ref}
        m = masks(got["a_slot"], got["a_fuse"], official=False)
        diffs["mask_pixels_differing_per_million"] = float(
            (m != ref_masks).float().mean() * 1e6)
        diffs["mask_pixels_differing_worst_fraction"] = float(
            (m != ref_masks).flatten(1).float().mean(1).max())
        result[f"eps={eps:g}"] = diffs
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("official", type=Path, help="a checkout of github:kdwonn/SaG")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    report: dict[str, Any] = {"torch": torch.__version__, "flags": FLAGS}
    for regime, peaky in (("near-flat", False), ("peaky", True)):
        runs = [compare(args.official, peaky, seed) for seed in range(args.seeds)]
        worst = {eps: {k: max(r[eps][k] for r in runs) for k in runs[0][eps]}
                 for eps in runs[0]}
        report[regime] = worst
        for eps, d in worst.items():
            print(f"{regime:9s} {eps:9s} " + "  ".join(f"{k} {v:.2g}" for k, v in d.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
