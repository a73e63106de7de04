"""ALBEF checkpoint layouts written down from ``shared/reference/albef.md`` (and, for the
``position_ids`` buffer, from the Hugging Face BERT that ALBEF's code builds on), NOT
from wsris' model code: tests compare the model and the converter against these.

Sizes are parameters so the same description gives full-size (shape-only) and tiny
(materialised) synthetic checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dims:
    width: int = 768  # ViT and BERT hidden size (both 768 in ALBEF-base)
    depth: int = 12  # ViT blocks
    patch: int = 16
    grid: int = 24  # patches per side: 384 px -> 24, 256 px -> 16
    text_layers: int = 12
    fusion_layer: int = 6
    intermediate: int = 3072
    vocab: int = 30522
    max_positions: int = 512
    embed_dim: int = 256
    queue: int = 65536


BASE = Dims()
TINY = Dims(
    width=32, depth=4, patch=8, grid=4, text_layers=4, fusion_layer=2, intermediate=64,
    max_positions=64, embed_dim=16, queue=8,
)  # fmt: skip


def _linear(name: str, out_f: int, in_f: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (out_f, in_f), f"{name}.bias": (out_f,)}


def _norm(name: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (width,), f"{name}.bias": (width,)}


def visual_layout(d: Dims, prefix: str = "visual_encoder.", grid: int | None = None):
    g = d.grid if grid is None else grid
    w = d.width
    out: dict[str, tuple[int, ...]] = {
        f"{prefix}cls_token": (1, 1, w),
        f"{prefix}pos_embed": (1, g * g + 1, w),
        f"{prefix}patch_embed.proj.weight": (w, 3, d.patch, d.patch),
        f"{prefix}patch_embed.proj.bias": (w,),
    }
    for i in range(d.depth):
        b = f"{prefix}blocks.{i}."
        out |= _norm(b + "norm1", w)
        out |= _linear(b + "attn.qkv", 3 * w, w)
        out |= _linear(b + "attn.proj", w, w)
        out |= _norm(b + "norm2", w)
        out |= _linear(b + "mlp.fc1", 4 * w, w)
        out |= _linear(b + "mlp.fc2", w, 4 * w)
    out |= _norm(f"{prefix}norm", w)
    return out


def bert_layout(d: Dims, prefix: str, position_ids: bool = False):
    w = d.width
    e = f"{prefix}embeddings."
    out: dict[str, tuple[int, ...]] = {
        e + "word_embeddings.weight": (d.vocab, w),
        e + "position_embeddings.weight": (d.max_positions, w),
        e + "token_type_embeddings.weight": (2, w),
    }
    out |= _norm(e + "LayerNorm", w)
    if position_ids:
        out[e + "position_ids"] = (1, d.max_positions)
    for n in range(d.text_layers):
        lay = f"{prefix}encoder.layer.{n}."
        blocks = ["attention"] + (["crossattention"] if n >= d.fusion_layer else [])
        for blk in blocks:
            for qkv in ("query", "key", "value"):
                out |= _linear(f"{lay}{blk}.self.{qkv}", w, w)  # encoder_width == 768
            out |= _linear(f"{lay}{blk}.output.dense", w, w)
            out |= _norm(f"{lay}{blk}.output.LayerNorm", w)
        out |= _linear(lay + "intermediate.dense", d.intermediate, w)
        out |= _linear(lay + "output.dense", w, d.intermediate)
        out |= _norm(lay + "output.LayerNorm", w)
    return out


def heads_layout(d: Dims, suffix: str = ""):
    out = _linear("vision_proj" + suffix, d.embed_dim, d.width)
    out |= _linear("text_proj" + suffix, d.embed_dim, d.width)
    return out


def wsris_layout(d: Dims) -> dict[str, tuple[int, ...]]:
    """What the converted model holds: the grounding layout without buffers."""
    out = visual_layout(d) | bert_layout(d, "text_encoder.")
    out |= _linear("itm_head", 2, d.width) | heads_layout(d) | {"temp": ()}
    return out


def grounding_layout(d: Dims) -> dict[str, tuple[int, ...]]:
    """``refcoco.pth``: plain state dict, no ``bert.`` prefix, no momentum/queues."""
    out = visual_layout(d) | bert_layout(d, "text_encoder.", position_ids=True)
    out |= _linear("itm_head", 2, d.width) | heads_layout(d) | {"temp": ()}
    return out


def pretrain_layout(d: Dims, grid: int) -> dict[str, tuple[int, ...]]:
    """``ALBEF.pth['model']``: ``bert.`` prefix, momentum copies, queues, MLM head."""
    out = visual_layout(d, grid=grid)
    out |= bert_layout(d, "text_encoder.bert.", position_ids=True)
    mlm = "text_encoder.cls.predictions."
    out |= {mlm + "bias": (d.vocab,)}
    out |= _linear(mlm + "transform.dense", d.width, d.width)
    out |= _norm(mlm + "transform.LayerNorm", d.width)
    out |= _linear(mlm + "decoder", d.vocab, d.width)
    out |= _linear("itm_head", 2, d.width) | heads_layout(d) | {"temp": ()}
    # momentum copies
    out |= visual_layout(d, prefix="visual_encoder_m.", grid=grid)
    out |= bert_layout(d, "text_encoder_m.bert.", position_ids=True)
    out |= {k.replace("text_encoder.", "text_encoder_m.", 1): v for k, v in out.items()
            if k.startswith(mlm)}  # fmt: skip
    out |= heads_layout(d, suffix="_m")
    out |= {
        "image_queue": (d.embed_dim, d.queue),
        "text_queue": (d.embed_dim, d.queue),
        "queue_ptr": (1,),
    }
    return out


def param_count(layout: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in layout.values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def materialise(layout: dict[str, tuple[int, ...]], seed: int = 0, device: str = "cpu"):
    """Random tensors of the layout's shapes (``position_ids``/``queue_ptr`` as longs)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout.items():
        if key.endswith("position_ids"):
            out[key] = torch.arange(shape[1]).expand(1, -1).clone()
        elif key == "queue_ptr":
            out[key] = torch.zeros(shape, dtype=torch.long)
        elif device == "meta":
            out[key] = torch.empty(shape, device="meta")
        else:
            out[key] = torch.randn(shape, generator=gen) * 0.05
    return out
