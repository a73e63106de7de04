"""The upstream way of computing the same maps, to time wsris against.

* Chunk / ALBEF Grad-CAM (``shared/reference/albef.md``): one expression at a time; for
  each, the image is encoded again, the whole model runs forward with autograd on (every
  parameter requires grad), a forward hook keeps the target layer's cross-attention
  probabilities and ``retain_grad``s them, and ``.backward()`` of the positive ITM logit
  runs through the whole model (fusion, text and vision encoders, parameter gradients
  included). The map is ALBEF's: image [CLS] column dropped, attention times the clamped
  gradient, masked, averaged over heads, then averaged over the expression's words.
* Shatter and Gather (``shared/reference/sag-official.md``): one expression at a time;
  for each, the image is encoded again and its slots discovered again, then the text is
  encoded and fused, and the map is ``A^slot . A^fuse``. The official code draws fresh
  slot noise every time; here the draw is seeded as in wsris so that the maps can be
  compared number for number.

Both are written as ``Localize`` functions (``wsris.pipelines.base``) and plugged into a
copy of the Segmenter, so that image loading, tokenising, pre-processing (resize and
normalise, done once) and post-processing (resize to the image, min-max) are the same
code for both ways: only the model work differs.

The map formulas are written here independently of ``wsris.registry`` so that the
equality check covers them too.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wsris.pipelines.base import LocalizationOutput, TextBatch


@dataclass
class UpstreamCam:
    """Grad-CAM of one expression the upstream way."""

    maps: torch.Tensor  # [L, h, w] one map per text position (CPU, float32)
    itm_logits: torch.Tensor  # [2]


@contextlib.contextmanager
def all_parameters_trainable(model: torch.nn.Module) -> Iterator[None]:
    """Upstream runs with ``requires_grad`` on every parameter: the backward computes
    every parameter's gradient. Restores the previous flags on exit."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _one_text(text: TextBatch, t: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Row ``t`` of a padded batch without its padding, as upstream tokenises one text;
    and the positions of its words (not [CLS]/[SEP])."""
    length = int(text.attention_mask[t].sum())
    ids = text.input_ids[t : t + 1, :length]
    mask = text.attention_mask[t : t + 1, :length]
    word_ids = text.word_ids[t] if t < len(text.word_ids) else []
    positions = [p for p in range(length) if p < len(word_ids) and word_ids[p] is not None]
    if not text.word_ids:  # no word alignment: every position after [CLS]
        positions = list(range(1, length))
    return ids, mask, positions


def upstream_gradcam_single(
    model: Any, pixel_values: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, layer: int
) -> UpstreamCam:
    """ALBEF's Grad-CAM for one image and one (unpadded) text: full forward with a hook,
    ``retain_grad`` on the attention, full ``.backward()``."""
    saved: dict[str, torch.Tensor] = {}

    def keep_attention(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        probs = output[1]  # post-softmax cross-attention, before dropout
        probs.retain_grad()
        saved["attention"] = probs

    target = model.text_encoder.encoder.layer[layer].crossattention
    handle = target.register_forward_hook(keep_attention)
    try:
        with torch.enable_grad():
            logits = model(pixel_values, ids, mask)  # encodes the image again
            model.zero_grad(set_to_none=True)
            logits[:, 1].float().sum().backward()
    finally:
        handle.remove()
    attention = saved["attention"]
    grad = attention.grad
    assert grad is not None
    model.zero_grad(set_to_none=True)  # free the parameter gradients

    _, heads, length, tokens = attention.shape
    side = int(round((tokens - 1) ** 0.5))
    keep = mask.view(1, 1, length, 1, 1).float()
    cams = attention.detach().float()[..., 1:].reshape(1, heads, length, side, side) * keep
    grads = grad.float()[..., 1:].clamp(0).reshape(1, heads, length, side, side) * keep
    maps = (cams * grads).mean(dim=1)[0]
    return UpstreamCam(maps.cpu(), logits.detach()[0].float().cpu())


def upstream_chunk_localize(
    model: Any,
    pixel_values: torch.Tensor,
    text: TextBatch,
    image: np.ndarray,
    options: dict[str, Any],
    cache: dict[Any, Any] | None = None,  # unused: upstream recomputes everything
) -> list[LocalizationOutput]:
    """Grad-CAM only (stage ``gradcam``), one expression at a time, the upstream way."""
    layer = options.get("gradcam_layer")
    layer = model.config.default_gradcam_layer if layer is None else int(layer)
    outputs = []
    with all_parameters_trainable(model):
        for t in range(text.input_ids.shape[0]):
            ids, mask, positions = _one_text(text, t)
            cam = upstream_gradcam_single(model, pixel_values, ids, mask, layer)
            words = cam.maps[positions]
            # ALBEF's grounding evaluation averages [CLS] (position 0) with the words
            used = [0, *positions] if options.get("average") == "tokens_with_cls" else positions
            sentence = cam.maps[used].mean(dim=0) if used else torch.zeros_like(cam.maps[0])
            stages = {"gradcam": sentence, "word_maps": words, "itm_logits": cam.itm_logits}
            score = float(cam.itm_logits.softmax(dim=-1)[1])
            outputs.append(LocalizationOutput(heatmap=sentence, score=score, stages=stages))
    return outputs


@torch.no_grad()
def upstream_sag_localize(
    model: Any,
    pixel_values: torch.Tensor,
    text: TextBatch,
    image: np.ndarray,
    options: dict[str, Any],
    cache: dict[Any, Any] | None = None,  # unused: upstream recomputes everything
) -> list[LocalizationOutput]:
    """SaG inference one expression at a time: image encoded and slots discovered again
    for every expression. ``A^slot . A^fuse`` only (the paper's combination)."""
    if options.get("combine", "product") != "product":
        raise ValueError("the upstream SaG benchmark computes the paper's product map only")
    init = options.get("slot_init") or "mean"
    samples = int(options.get("num_samples") or 1) if init == "sample" else 1
    seed = int(options.get("seed") or 0)
    outputs = []
    for t in range(text.input_ids.shape[0]):
        ids, mask, _ = _one_text(text, t)
        _, slots = model.encode_slots(pixel_values, init, samples, seed)
        feature = model.encode_text(ids, mask)  # [1, D]
        fused = model.fuse(slots.slots, feature)  # a_fuse [n, 1, K]
        h, w = slots.grid
        a_slot = slots.a_slot.float()  # [n, K, N]
        a_fuse = fused.a_fuse.float()[:, 0]  # [n, K]
        heat = torch.einsum("nk,nkp->np", a_fuse, a_slot).mean(dim=0).reshape(h, w).cpu()
        stages = {"map": heat, "a_fuse": a_fuse[0].cpu()}
        outputs.append(LocalizationOutput(heatmap=heat, stages=stages))
    return outputs


UPSTREAM = {"chunk": upstream_chunk_localize, "sag": upstream_sag_localize}


def as_upstream(segmenter: Any) -> Any:
    """A shallow copy of ``segmenter`` (same model, same pre- and post-processing) whose
    per-method work is the upstream way."""
    twin = copy.copy(segmenter)
    twin._localize = UPSTREAM[segmenter.method]
    twin.name = f"{segmenter.name} (upstream way)"
    return twin
