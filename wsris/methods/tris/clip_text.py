"""CLIP's text transformer as TRIS runs it: causal, on the first ``length`` positions.

TRIS builds CLIP with ``txt_length=20``: the causal mask is 20 x 20 and the 77-entry
position table is read up to the sequence length. Every position is attended to
(earlier ones only, causally), padding included: no padding mask, as in CLIP.

Returns the per-token features after the final LayerNorm ``[T, L, width]`` (stage 2's
language input) and the sentence feature: the token at the highest id of each row (the
end token ``<|endoftext|>``, unless the cut to 20 removed it) times ``text_projection``
(stage 1's). Parameter names follow CLIP's top-level layout.
"""

from __future__ import annotations

import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, width * 4)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """Pre-norm residual block: causal self-attention, then the MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = Mlp(width)
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=causal)[0]
        return x + self.mlp(self.ln_2(x))


class Resblocks(nn.Module):
    """Holds the blocks under ``resblocks.N`` (CLIP's ``transformer.resblocks.N``)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(Block(width, heads) for _ in range(layers))


class ClipText(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int,
                 heads: int, embed_dim: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.transformer = Resblocks(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed_dim) * width**-0.5)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``ids`` ``[T, L]`` -> (token features ``[T, L, width]``, sentence ``[T, D]``)."""
        length = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:length]
        causal = torch.full((length, length), float("-inf"), device=ids.device).triu(1)
        for block in self.transformer.resblocks:
            x = block(x, causal.to(x.dtype))
        x = self.ln_final(x)
        sentence = x[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
        return x, sentence @ self.text_projection
