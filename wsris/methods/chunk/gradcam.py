"""Grad-CAM on one fusion layer's cross-attention (chunk paper Eq. 1, ALBEF's "itm" mode).

For text-encoder layer ``layer`` (8 for ALBEF-base, the third fusion layer):

- ``A``: its post-softmax cross-attention probabilities ``[T, heads, L, 1+N]`` (before
  dropout), ``G = d s / d A`` with ``s = sum_t itm_logits[t, 1]`` (the raw positive ITM
  logit summed over the batch; the texts do not interact, so each text's gradient is
  its own);
- map = ``mean_heads(A * clamp(G, min=0))`` without the image [CLS] column, reshaped to
  the patch grid, zero at padded text positions. The gradient is clamped, not the
  attention; Eq. 1's ``ReLU(A * dA)`` is the same number because ``A >= 0``.

Text position 0 is [CLS]; the map of word (WordPiece) ``i`` is position ``i + 1``. In
the LAST text layer only [CLS] reaches the ITM head, so every word map there is zero:
the Grad-CAM layer must lie below it (ALBEF-base: 8 of 6..11).

The model exposes the attention through one documented hook,
:meth:`~wsris.methods.chunk.model.AlbefModel.forward_with_cross_attention`; two ways to compute:

- ``create_graph=False`` (inference): everything up to the target attention runs under
  ``no_grad``; the probabilities are a leaf that requires grad, so the backward touches
  only the layers above the target.
- ``create_graph=True`` (training losses on Grad-CAM): one ordinary forward; the gradient
  is taken with ``create_graph=True`` so the map stays differentiable with respect to
  every parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...backbones.bert import IndexedImages
from .model import AlbefModel


@dataclass
class GradCamOutput:
    maps: torch.Tensor  # [T, L, h, w] float32, one map per text position, padding zero
    itm_logits: torch.Tensor  # [T, 2]


def gradcam_maps(
    attention: torch.Tensor,
    gradient: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Eq. 1 from an attention map and its gradient, both ``[T, heads, L, 1+N]``.

    Returns ``[T, L, h, w]`` float32: image [CLS] column dropped, gradient clamped at 0,
    attention x gradient averaged over heads, padded text positions (mask 0) zeroed.
    ``grid`` defaults to a square ``sqrt(N)``.
    """
    a = attention[..., 1:].float()
    g = gradient[..., 1:].float().clamp(min=0)
    cam = (a * g).mean(dim=1)  # [T, L, N]
    if attention_mask is not None:
        cam = cam * attention_mask[:, :, None].to(cam.dtype)
    n = cam.shape[-1]
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} image tokens are not a square grid; pass grid=(h, w)")
        grid = (side, side)
    return cam.reshape(*cam.shape[:2], *grid)


def word_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-word maps ``[T, L-1, h, w]``: word ``i`` is text position ``i + 1``."""
    return maps[:, 1:]


def sentence_map(maps: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """Average of ``maps[t, p]`` over the positions where ``word_mask[t, p]`` is true.

    The chunk paper's ``M_final`` averages over the sentence's words: pass a mask of the
    word positions (non-padding, after [CLS]; see :func:`default_word_mask`). ALBEF's
    own grounding evaluation also averages the [CLS] position: pass the attention mask
    to reproduce that. Returns ``[T, h, w]``; a text with no word gives zeros.
    """
    w = word_mask.to(maps.dtype)[:, :, None, None]
    return (maps * w).sum(dim=1) / w.sum(dim=1).clamp(min=1)


def default_word_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Non-padding positions after [CLS]."""
    mask = attention_mask.bool().clone()
    mask[:, 0] = False
    return mask


def compute_gradcam(
    model: AlbefModel,
    image_embeds: torch.Tensor | IndexedImages,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layer: int | None = None,
    create_graph: bool = False,
    text_hidden: torch.Tensor | None = None,
) -> GradCamOutput:
    """Grad-CAM maps of all text positions for ``T`` texts against their image(s).

    ``image_embeds`` is ``[1, 1+N, D]`` (one image shared by all texts: encoded once,
    its keys/values computed once) or ``[T, 1+N, D]``. ``layer`` is the absolute text
    layer (default: the model config's ``default_gradcam_layer``). ``text_hidden`` may
    pass precomputed text-only states. With ``create_graph=False`` the result is
    detached; with ``True`` it is differentiable with respect to the model parameters.
    """
    layer = model.config.default_gradcam_layer if layer is None else layer
    if isinstance(image_embeds, IndexedImages) and not create_graph:
        image_embeds = image_embeds.gather()  # a batch of images is fine when training
    if text_hidden is None:
        with torch.set_grad_enabled(create_graph):
            text_hidden = model.encode_text(input_ids, attention_mask)
    with torch.enable_grad():
        out = model.forward_with_cross_attention(
            text_hidden, attention_mask, image_embeds, layer, differentiable=create_graph
        )
        objective = out.itm_logits[:, 1].float().sum()
        (grad,) = torch.autograd.grad(objective, out.attention, create_graph=create_graph)
    if not create_graph:
        maps = gradcam_maps(out.attention.detach(), grad, attention_mask)
        return GradCamOutput(maps, out.itm_logits.detach())
    return GradCamOutput(gradcam_maps(out.attention, grad, attention_mask), out.itm_logits)
