"""Shared helpers for the chunk-method tests: a tiny ALBEF with lively random weights and
hand-built text batches (the real tokenizer is tested elsewhere)."""

from __future__ import annotations

import torch

from wsris.methods.chunk.model import AlbefConfig, AlbefModel
from wsris.pipelines.base import TextBatch


def tiny_model(seed: int = 0, std: float = 0.3) -> AlbefModel:
    """Tiny ALBEF in eval mode. Default init (std 0.02) gives near-zero Grad-CAMs, so the
    weights are redrawn larger to make comparisons meaningful."""
    torch.manual_seed(seed)
    model = AlbefModel(AlbefConfig.tiny()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or ".norm" in name or name.startswith("visual_encoder.norm"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p) if name.endswith("weight") else
                        0.1 * torch.randn_like(p))  # fmt: skip
            else:
                p.normal_(0.0, std)
    return model


def text_batch(lengths: list[int], max_len: int | None = None, seed: int = 1) -> TextBatch:
    """``[CLS] w1 .. wn`` (no [SEP], ALBEF style) padded with 0; one word per WordPiece."""
    gen = torch.Generator().manual_seed(seed)
    max_len = max_len or max(lengths) + 1
    ids = torch.zeros(len(lengths), max_len, dtype=torch.long)
    mask = torch.zeros_like(ids)
    tokens, word_ids = [], []
    for t, n in enumerate(lengths):
        ids[t, 0] = 101
        ids[t, 1 : n + 1] = torch.randint(1000, 5000, (n,), generator=gen)
        mask[t, : n + 1] = 1
        tokens.append(["[CLS]"] + [f"w{t}_{i}" for i in range(n)])
        word_ids.append([None] + list(range(n)) + [None] * (max_len - n - 1))
    texts = [" ".join(tok[1:]) for tok in tokens]
    return TextBatch(texts, ids, mask, tokens, word_ids)


def tiny_chunk_objective(**loss):
    """A chunk training objective on a tiny model and 32-px Shapes-Ref scenes, with the
    given ``loss`` options, and its training data."""
    from wsris.training import TrainConfig
    from wsris.training.objectives import build_objective

    cfg = TrainConfig.from_dict({
        "method": "chunk",
        "model": {"preset": "tiny", "architecture": {"image_size": 32}},
        "data": {"train": "shapes:train?image_size=32&length=16"},
        "loss": loss,
    })
    obj = build_objective(cfg, torch.device("cpu"))
    return obj, obj.train_dataset()
