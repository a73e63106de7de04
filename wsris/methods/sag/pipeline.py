"""Shatter and Gather inference (paper Sec. 3.5): ``A^slot . A^fuse`` at the token grid.

The image is encoded and its slots discovered once; all texts are encoded and fused with
those slots in one batch. The Segmenter then resizes each map bilinearly to the original
image size, min-max normalises it and thresholds it (0.5 in the paper).

Options (``config.json`` "inference", overridable per call):

* ``combine``: ``product`` (the paper's), ``max``, ``avg`` or ``min`` (Table 4b; see
  :mod:`wsris.methods.sag.slots`);
* ``slot_init``: ``mean`` (the Gaussian means, no noise), ``sample`` (noise from a CPU
  generator seeded with ``seed``, the maps of ``num_samples`` draws averaged) or ``fresh``
  (the official code's behaviour: new noise from the global RNG at every call, so the same
  input can give different masks; never cached). ``mean`` and ``sample`` are deterministic.
* ``slot_split``: ``none`` (the paper's) or ``pieces`` (a departure; default: the model's
  ``slot_split``): a slot whose hard mask falls apart into 8-connected pieces becomes one
  entity per piece (:meth:`SagModel.split_slots`), and the text is fused with those.

Stages kept on each output: ``a_slot`` ``[K, h, w]`` (the last iteration's A^slot, heads
averaged; shared by all texts of the image), ``a_fuse`` ``[K]`` (this text's A^fuse),
``map`` ``[h, w]`` (the combined map before resizing). With ``num_samples > 1`` these are
the first draw's, the map is the average over draws, and ``a_slot_samples``
``[n, K, h, w]`` / ``a_fuse_samples`` ``[n, K]`` hold every draw (lists of ``[K_s, h, w]``
and ``[K_s]`` with ``slot_split: pieces``, where draws may differ in count). ``score`` is
the cosine between the cross-modal embedding ``z`` and the text feature (the quantity C^3
trains), averaged over draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidInputError
from ...pipelines.base import LocalizationOutput
from ...text import TextBatch
from .model import SLOT_INITS, SLOT_SPLITS, SagModel
from .slots import COMBINE_MODES, combine_slot_maps

# "fresh": the official evaluation's fresh noise per call (not reproducible)
INFERENCE_SLOT_INITS = (*SLOT_INITS, "fresh")
DEFAULT_OPTIONS: dict[str, Any] = {
    "combine": "product",
    "slot_init": "sample",
    "num_samples": 1,
    "seed": 0,
    "slot_split": None,  # None: the model's
}


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    if opts["combine"] not in COMBINE_MODES:
        raise InvalidInputError(f"combine must be one of {COMBINE_MODES}, got {opts['combine']!r}")
    if opts["slot_init"] not in INFERENCE_SLOT_INITS:
        raise InvalidInputError(
            f"slot_init must be one of {INFERENCE_SLOT_INITS}, got {opts['slot_init']!r}")
    try:
        opts["num_samples"] = int(opts["num_samples"])
        opts["seed"] = int(opts["seed"])
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"num_samples and seed must be integers: {exc}") from None
    if opts["num_samples"] < 1:
        raise InvalidInputError("num_samples must be >= 1")
    if opts["slot_split"] is not None and opts["slot_split"] not in SLOT_SPLITS:
        raise InvalidInputError(
            f"slot_split must be one of {SLOT_SPLITS}, got {opts['slot_split']!r}")
    if opts["slot_init"] == "mean":
        opts["num_samples"] = 1  # the means are deterministic: one draw says it all
    return opts


def _slots(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    opts: dict[str, Any],
    cache: dict[Any, Any] | None,
) -> Any:
    """The image's slots for ``opts``, from ``cache`` when an earlier call made them."""
    if not isinstance(model, SagModel):
        raise TypeError(f"the sag pipeline needs a SagModel, got {type(model).__name__}")
    if pixel_values.shape[0] != 1:
        raise InvalidInputError("localize takes one image at a time")
    if opts["slot_init"] == "mean" and model.config.slot_type == "random":
        raise InvalidInputError(
            "slot_init='mean' is degenerate for random slots (all slots equal): use 'sample'"
        )
    if opts["slot_init"] == "fresh":  # new noise every call: nothing to reuse
        return model.encode_slots(pixel_values, "sample", opts["num_samples"], seed=None)[1]
    key = ("slots", opts["slot_init"], opts["num_samples"], opts["seed"])
    if cache is not None and key in cache:
        return cache[key]
    _, slots = model.encode_slots(
        pixel_values, opts["slot_init"], opts["num_samples"], opts["seed"]
    )
    if cache is not None:
        cache[key] = slots
    return slots


@torch.no_grad()
def encode(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    image: np.ndarray,
    options: dict[str, Any],
    cache: dict[Any, Any],
) -> None:
    """Encode the image and discover its slots for ``options`` into ``cache``, which
    :func:`localize` then reuses for every text on the same image."""
    _slots(model, pixel_values, _options(options), cache)


@torch.no_grad()
def localize(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    text: TextBatch,
    image: np.ndarray,
    options: dict[str, Any],
    cache: dict[Any, Any] | None = None,
) -> list[LocalizationOutput]:
    """One :class:`LocalizationOutput` per text of ``text``, for the single image
    ``pixel_values`` ``[1, 3, H, W]``. With ``cache`` (filled by :func:`encode` or an
    earlier call) the slots discovered for the same options are reused."""
    opts = _options(options)
    n = opts["num_samples"]
    slots = _slots(model, pixel_values, opts, cache)
    text_feats = model.encode_text(text.input_ids, text.attention_mask)  # [T, D]
    entities = model.entities(slots, opts["slot_split"])
    fused = model.fuse(entities.slots, text_feats, entities.mask)  # z [n, T, D], a_fuse [n, T, K]

    h, w = slots.grid
    a_slot: Any = entities.a_slot.float().reshape(n, -1, h, w).cpu()  # [n, K, h, w]
    a_fuse: Any = fused.a_fuse.float().cpu()  # [n, T, K]
    if entities.mask is not None:  # each draw's own entities, padding dropped
        real = entities.mask.cpu()
        a_slot = [a_slot[s][real[s]] for s in range(n)]
        a_fuse = [a_fuse[s][:, real[s]] for s in range(n)]
    maps = torch.stack(
        [combine_slot_maps(a_slot[s], a_fuse[s], opts["combine"]) for s in range(n)]
    ).mean(dim=0)  # [T, h, w]
    target = F.normalize(text_feats.float(), dim=-1)
    cosine = torch.einsum("ntd,td->nt", fused.z.float(), target).mean(dim=0).cpu()

    first = a_slot[0]  # one tensor shared by every text's stages
    outputs = []
    for t in range(text_feats.shape[0]):
        stages: dict[str, Any] = {
            "a_slot": first,
            "a_fuse": a_fuse[0][t],
            "map": maps[t],
            "combine": opts["combine"],
            "slot_init": opts["slot_init"],
            "num_samples": n,
            "slot_split": opts["slot_split"] or model.config.slot_split,
        }
        if n > 1:
            stages["a_slot_samples"] = a_slot
            stages["a_fuse_samples"] = (a_fuse[:, t] if isinstance(a_fuse, torch.Tensor)
                                        else [f[t] for f in a_fuse])
        outputs.append(
            LocalizationOutput(heatmap=maps[t].contiguous(), score=float(cosine[t]), stages=stages)
        )
    return outputs
