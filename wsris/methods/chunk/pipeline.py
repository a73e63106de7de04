"""The chunk method at inference (Lee et al. 2023, Sec. 3.1 and 3.3).

Stages, each kept in ``LocalizationOutput.stages``:

1. ``gradcam`` (always on): Grad-CAM of the positive ITM logit on one fusion layer's
   cross-attention (Eq. 1), one map per word (WordPiece) -> ``word_maps``/``words``,
   averaged over the sentence's words -> ``gradcam`` (``M_final``).
2. ``affinity``: ``M_final`` propagated with the visual self-attention of one block
   (Eq. 7) -> ``affinity`` (``M^r``).
3. ``proposals``: unsupervised mask proposals for the image (an MCG stand-in, computed
   once per image and shared by its texts); the one with the highest IoU against the
   min-max normalised map binarised at ``proposal_tau`` becomes the mask -> ``proposal``.

The heat map returned is the last map computed (``M^r``, or ``M_final`` without
affinity). Without proposals (or when no proposal overlaps the map) ``mask`` is None and
the Segmenter thresholds the heat map.

Options (``config.json["inference"]`` plus per-call overrides): ``stages``,
``gradcam_layer``, ``affinity_layer``, ``proposal_tau`` (0.3), ``max_proposals``,
``average``: ``"words"`` (default, the paper's average over the sentence's words) or
``"tokens_with_cls"`` (ALBEF's grounding evaluation, which also averages [CLS]), and
``proposal_select``: ``"iou"`` (default, the paper's rule above) or ``"mean"`` (the
proposal with the highest mean map inside, among those covering at least
``proposal_min_area`` (0.01) of the image; for maps that peak on a few tokens), and
``map_sigma``: a Gaussian blur of the final low-resolution map, in tokens (0: none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...blocks.maps import upsample_normalised
from ...errors import InvalidInputError
from ...pipelines.base import LocalizationOutput
from ...text import TextBatch
from .affinity import patch_affinity, refine_with_affinity
from .gradcam import compute_gradcam, default_word_mask, sentence_map
from .model import AlbefModel, VisionOutput

STAGES = ("gradcam", "affinity", "proposals")
AVERAGES = ("words", "tokens_with_cls")
PROPOSAL_SELECTS = ("iou", "mean")
PROPOSAL_TAU = 0.3
# Proposals are computed at this long side at most; the mask is returned at that size
# and the Segmenter resizes it (nearest) to the original image.
PROPOSAL_MAX_SIDE = 384


def _stages(value: Any) -> tuple[str, ...]:
    if value is None:
        return STAGES
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence):
        raise InvalidInputError(f"stages must be a list of names from {STAGES}, got {value!r}")
    unknown = [s for s in value if s not in STAGES]
    if unknown:
        raise InvalidInputError(f"unknown stage(s) {unknown}; known: {list(STAGES)}")
    # Grad-CAM is the method: always on. Keep the canonical order.
    return tuple(s for s in STAGES if s == "gradcam" or s in value)


def _int_option(options: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = options.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise InvalidInputError(f"{name} must be an integer in [{lo}, {hi}), got {value!r}")
    return value


def _word_mask(text: TextBatch) -> torch.Tensor:
    """Positions that belong to a word: non-padding, not [CLS]/[SEP] (``word_ids`` set)."""
    mask = default_word_mask(text.attention_mask).cpu()
    if text.word_ids:
        length = mask.shape[1]
        from_ids = torch.zeros_like(mask)
        for t, ids in enumerate(text.word_ids):
            for p, wid in enumerate(ids[:length]):
                from_ids[t, p] = wid is not None
        mask &= from_ids
    return mask


@contextlib.contextmanager
def _autograd_allowed() -> Iterator[None]:
    """Grad-CAM needs autograd: step out of ``torch.inference_mode`` if a caller is in it."""
    if torch.is_inference_mode_enabled():
        with torch.inference_mode(False):
            yield
    else:
        yield


def _normal(t: torch.Tensor) -> torch.Tensor:
    """Inference-mode tensors cannot enter autograd: copy them into normal tensors."""
    return t.clone() if t.is_inference() else t


def proposal_image(image: np.ndarray) -> np.ndarray:
    """The image the proposals are computed on: at most ``PROPOSAL_MAX_SIDE`` px a side."""
    h, w = image.shape[:2]
    scale = PROPOSAL_MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return image
    import cv2

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _normalised(low: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to ``size`` and min-max to [0, 1], as the Segmenter does."""
    return upsample_normalised(low, size).numpy()


def _parse(model: AlbefModel, options: dict[str, Any]) -> dict[str, Any]:
    """Checked options: stages, layers, averaging, proposal settings."""
    cfg = model.config
    stages = _stages(options.get("stages"))
    gradcam_layer = _int_option(
        options, "gradcam_layer", cfg.default_gradcam_layer, cfg.fusion_layer, cfg.text_layers
    )
    affinity_layer = _int_option(
        options, "affinity_layer", cfg.default_affinity_layer, 0, cfg.vision_layers
    )
    average = options.get("average") or "words"
    if average not in AVERAGES:
        raise InvalidInputError(f"average must be one of {AVERAGES}, got {average!r}")
    tau = options.get("proposal_tau")
    tau = PROPOSAL_TAU if tau is None else tau
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 <= tau <= 1.0:
        raise InvalidInputError(f"proposal_tau must be a number in [0, 1], got {tau!r}")
    max_proposals = options.get("max_proposals")
    if max_proposals is not None and (
        isinstance(max_proposals, bool) or not isinstance(max_proposals, int) or max_proposals < 1
    ):
        raise InvalidInputError(f"max_proposals must be a positive integer, got {max_proposals!r}")
    select = options.get("proposal_select") or "iou"
    if select not in PROPOSAL_SELECTS:
        raise InvalidInputError(
            f"proposal_select must be one of {PROPOSAL_SELECTS}, got {select!r}"
        )
    min_area = options.get("proposal_min_area")
    min_area = 0.01 if min_area is None else min_area
    if isinstance(min_area, bool) or not isinstance(min_area, (int, float)) or not (
        0.0 <= min_area < 1.0
    ):
        raise InvalidInputError(f"proposal_min_area must be in [0, 1), got {min_area!r}")
    sigma = options.get("map_sigma")
    sigma = 0.0 if sigma is None else sigma
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma <= 10:
        raise InvalidInputError(f"map_sigma must be a number of tokens in [0, 10], got {sigma!r}")
    return {
        "stages": stages,
        "gradcam_layer": gradcam_layer,
        "affinity_layer": affinity_layer,
        "average": average,
        "tau": float(tau),
        "max_proposals": max_proposals,
        "select": select,
        "min_area": float(min_area),
        "sigma": float(sigma),
    }


def _image_side(
    model: AlbefModel,
    pixel_values: torch.Tensor,
    image: np.ndarray,
    opts: dict[str, Any],
    cache: dict[Any, Any] | None,
) -> tuple[VisionOutput, np.ndarray | None]:
    """The image encoding (with the affinity block's attention when that stage is on)
    and the proposals, taken from ``cache`` when an earlier call computed them."""
    if pixel_values.shape[0] != 1:
        raise InvalidInputError(f"expected one image [1, 3, H, W], got {tuple(pixel_values.shape)}")
    cache = {} if cache is None else cache
    use_affinity = "affinity" in opts["stages"]
    block = opts["affinity_layer"] if use_affinity else None
    vision = cache.get(("vision", block))
    if vision is None and block is None:  # any cached encoding has the same tokens
        vision = next((v for k, v in cache.items() if k[0] == "vision"), None)
    if vision is None:
        with _autograd_allowed(), torch.no_grad():
            vision = model.encode_image(_normal(pixel_values), block)
        cache[("vision", block)] = vision
    proposals = None
    if "proposals" in opts["stages"]:
        key = ("proposals", opts["max_proposals"])
        proposals = cache.get(key)
        if proposals is None:
            from .proposals import generate_proposals

            small = proposal_image(image)
            max_proposals = opts["max_proposals"]
            kwargs = {} if max_proposals is None else {"max_proposals": max_proposals}
            proposals = generate_proposals(small, **kwargs)
            cache[key] = proposals
    return vision, proposals


def encode(
    model: AlbefModel,
    pixel_values: torch.Tensor,
    image: np.ndarray,
    options: dict[str, Any],
    cache: dict[Any, Any],
) -> None:
    """Compute the image side for ``options`` into ``cache`` (what :func:`localize`
    reuses for every later text on the same image)."""
    _image_side(model, pixel_values, image, _parse(model, options), cache)


def localize(
    model: AlbefModel,
    pixel_values: torch.Tensor,
    text: TextBatch,
    image: np.ndarray,
    options: dict[str, Any],
    cache: dict[Any, Any] | None = None,
) -> list[LocalizationOutput]:
    """Chunk-method maps (and proposal masks) for every text of ``text`` on one image.

    The image is encoded once; all texts run as one batch through the fusion layers and
    one backward pass into the Grad-CAM attention map. Needs autograd (it leaves
    ``torch.inference_mode`` on its own); everything not needed for the gradient runs
    under ``no_grad``. With ``cache`` (filled by :func:`encode` or an earlier call), the
    image encoding and proposals computed for the same options are reused.
    """
    opts = _parse(model, options)
    stages, gradcam_layer = opts["stages"], opts["gradcam_layer"]
    affinity_layer, average, tau = opts["affinity_layer"], opts["average"], opts["tau"]
    select, min_area, sigma = opts["select"], opts["min_area"], opts["sigma"]
    use_affinity = "affinity" in stages
    vision, proposals = _image_side(model, pixel_values, image, opts, cache)
    with _autograd_allowed():
        ids, mask = _normal(text.input_ids), _normal(text.attention_mask)
        cam = compute_gradcam(model, _normal(vision.tokens), ids, mask, gradcam_layer)

    maps = cam.maps.cpu()  # [T, L, h, w]
    word_mask = _word_mask(text)
    averaged = sentence_map(maps, word_mask if average == "words" else mask.bool().cpu())
    final = averaged
    refined = None
    if use_affinity:
        assert vision.attention is not None
        refined = refine_with_affinity(averaged, patch_affinity(vision.attention.cpu()))
        final = refined
    final = smooth_map(final, sigma)
    match = cam.itm_logits.float().softmax(dim=-1)[:, 1].cpu()

    outputs = []
    for t in range(maps.shape[0]):
        positions = torch.nonzero(word_mask[t]).flatten().tolist()
        tokens = text.tokens[t] if t < len(text.tokens) else []
        ids_t = text.word_ids[t] if t < len(text.word_ids) else []
        stages_t: dict[str, Any] = {
            "word_maps": maps[t, positions].clone(),
            "words": [tokens[p] if p < len(tokens) else "" for p in positions],
            "word_ids": [ids_t[p] if p < len(ids_t) else None for p in positions],
            "gradcam": averaged[t].clone(),
            "itm_logits": cam.itm_logits[t].detach().float().cpu(),
            "gradcam_layer": gradcam_layer,
        }
        if refined is not None:
            stages_t["affinity"] = refined[t].clone()
            stages_t["affinity_layer"] = affinity_layer
        chosen = None
        if proposals is not None:
            chosen = _select(proposals, final[t], tau, stages_t, select, min_area)
        outputs.append(
            LocalizationOutput(
                heatmap=final[t].clone(), mask=chosen, score=float(match[t]), stages=stages_t
            )
        )
    return outputs


def smooth_map(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``[T, h, w]`` maps with standard deviation ``sigma`` tokens
    (borders replicated); ``sigma`` 0 returns the maps unchanged."""
    if sigma <= 0:
        return maps
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).to(maps.dtype)
    out = F.pad(maps[:, None], (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1))
    out = F.conv2d(out, k.view(1, 1, -1, 1))
    return out[:, 0]


def _select(
    proposals: np.ndarray, low: torch.Tensor, tau: float, stages: dict[str, Any],
    rule: str = "iou", min_area: float = 0.01,
) -> np.ndarray | None:
    from .proposals import select_proposal, select_proposal_by_mean

    size = tuple(proposals.shape[1:]) if proposals.ndim == 3 else (1, 1)
    score_map = _normalised(low, size)
    if rule == "mean":
        index, value = select_proposal_by_mean(proposals, score_map, min_area)
    else:
        index, value = select_proposal(proposals, score_map, tau)
    stages["proposal"] = {
        "index": int(index),
        "rule": rule,
        "iou" if rule == "iou" else "mean": float(value),
        "count": int(proposals.shape[0]),
        "size": size,
        "tau": tau,
    }
    if index < 0:  # nothing overlaps the map: keep the thresholded heat map
        return None
    return np.asarray(proposals[index], dtype=bool)
