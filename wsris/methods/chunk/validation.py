"""What the chunk model has learned, before localisation (feasibility.md's lesson):

- ``itm_acc_balanced``: held-out ITM accuracy on balanced pairs (a val expression with
  its own image, and with the image of another scene);
- ``itm_acc_perturbed``: accuracy on attribute expressions against their twin with the
  colour swapped to one that no object of that shape has in the scene (judged on the
  Shapes-Ref ground truth, so the twin truly refers to nothing), balanced with the
  positives;
- ``itm_pair_balanced`` / ``itm_pair_perturbed``: the share of those pairs whose positive
  scores above its negative. Accuracy at 0.5 reads a model that ranks well but is
  calibrated low (training sees two negatives per positive) as chance; the pair ranking
  does not depend on calibration;
- ``gradcam_pick``: share of samples where the object with the highest mean Grad-CAM
  (sentence map over the words) is the target, beside ``random_pick`` (the mean of
  1 / number of objects, the random-object baseline); ``gradcam_pick_with_cls``: the
  same with [CLS] in the average (ALBEF's grounding evaluation; in a small model the
  [CLS] row carries most of the localisation);
- ``map_area``: the mean share of the min-max normalised sentence map above ``tau`` (how
  broad the Grad-CAM is; a target covers about 4% of a Shapes-Ref image), and
  ``chunk_regions``: the mean number of isolated regions above ``tau`` in a chunk map,
  the regions L_inter chooses ``r*`` from (with one region there is nothing to suppress).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...blocks.noun_chunks import chunk_batch, load_nlp
from ...errors import NlpModelError
from .gradcam import compute_gradcam, default_word_mask, sentence_map
from .losses import chunk_maps, isolated_regions, minmax_normalize


def perturb_colour(text: str, objects: list[Any], colours: list[str]) -> str | None:
    """Swap the colour word of an attribute expression for one that makes it refer to
    no object of the scene; None when the expression has no single colour word."""
    words = text.split()
    present = [i for i, w in enumerate(words) if w in colours]
    shapes = [w for w in words if any(w == o.shape for o in objects)]
    if len(present) != 1 or not shapes:
        return None
    taken = {o.colour for o in objects if o.shape == shapes[-1]}
    options = [c for c in colours if c not in taken]
    if not options:
        return None
    i = present[0]
    choice = options[sum(map(ord, text)) % len(options)]  # deterministic
    return " ".join([*words[:i], choice, *words[i + 1 :]])


def _picked(smap: torch.Tensor, object_masks: list[np.ndarray]) -> int:
    """The object whose mean (upsampled) map value is highest."""
    h, w = object_masks[0].shape
    up = F.interpolate(smap[None, None].float().cpu(), size=(h, w), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    return int(np.argmax([float(up[m].mean()) if m.any() else -np.inf for m in object_masks]))


def _itm_scores(objective, pixel_values: torch.Tensor, texts: list[str]) -> torch.Tensor:
    m = objective.model
    batch = objective.tokenizer(texts).to(objective.device)
    img = m.encode_image(pixel_values.to(objective.device)).tokens
    img = img.expand(len(texts), -1, -1) if img.shape[0] == 1 else img
    txt = m.encode_text(batch.input_ids, batch.attention_mask)
    logits = m.itm_logits(m.fuse(txt, batch.attention_mask, img).hidden)
    return F.softmax(logits.float(), dim=1)[:, 1]


def matching_metrics(objective, limit: int) -> dict[str, float]:
    data = objective.val_dataset()
    if data is None or not hasattr(data, "scene"):
        return {}
    colours = list(data.scenes.config.colours)  # the colours the data actually uses
    model = objective.model
    model.eval()
    n = min(limit, len(data))
    balanced, perturbed, picks, picks_cls, chance = [], [], [], [], []
    pair_balanced, pair_perturbed = [], []
    areas, regions = [], []
    tau = float(objective.weights["tau"])
    try:  # the per-chunk region count needs spaCy's noun chunks; the rest does not
        load_nlp()
        count_regions = True
    except NlpModelError as exc:
        warnings.warn(f"validation: chunk_regions left out: {exc}", stacklevel=2)
        count_regions = False
    for i in range(n):
        sample = data[i]
        scene = data.scene(data.image_key(i))
        other = data[(i + 7 * data.per_scene) % len(data)]
        pixels = objective.collator([sample]).pixel_values
        pos, neg = _itm_scores(objective, pixels, [sample.text, other.text]).tolist()
        balanced += [pos > 0.5, neg <= 0.5]
        pair_balanced.append(pos > neg)
        twin = perturb_colour(sample.text, scene.objects, colours)
        if twin is not None and sample.kind == "attribute":
            p, q = _itm_scores(objective, pixels, [sample.text, twin]).tolist()
            perturbed += [p > 0.5, q <= 0.5]
            pair_perturbed.append(p > q)
        batch = objective.tokenizer([sample.text]).to(objective.device)
        with torch.enable_grad():
            img = model.encode_image(pixels.to(objective.device)).tokens
            cam = compute_gradcam(model, img, batch.input_ids, batch.attention_mask,
                                  layer=objective.weights.get("gradcam_layer"))
        smap = sentence_map(cam.maps, default_word_mask(batch.attention_mask))[0]
        with_cls = sentence_map(cam.maps, batch.attention_mask.bool())[0]
        areas.append(float((minmax_normalize(smap.detach().float()) > tau).float().mean()))
        if count_regions:
            chunks = chunk_batch(batch, objective.tokenizer).position_chunks[0]
            for cmap in minmax_normalize(chunk_maps(cam.maps[0].detach(), chunks)):
                regions.append(isolated_regions(cmap.cpu().numpy(), tau)[0])
        target = next(k for k, m in enumerate(sample.object_masks) if (m == sample.mask).all())
        picks.append(_picked(smap, sample.object_masks) == target)
        picks_cls.append(_picked(with_cls, sample.object_masks) == target)
        chance.append(1.0 / len(sample.object_masks))
    model.train()
    out = {
        "itm_acc_balanced": float(np.mean(balanced)),
        "itm_pair_balanced": float(np.mean(pair_balanced)),
        "gradcam_pick": float(np.mean(picks)),
        "gradcam_pick_with_cls": float(np.mean(picks_cls)),
        "random_pick": float(np.mean(chance)),
        "map_area": float(np.mean(areas)),
        "chunk_regions": float(np.mean(regions)) if regions else float("nan"),
    }
    if perturbed:
        out["itm_acc_perturbed"] = float(np.mean(perturbed))
        out["itm_pair_perturbed"] = float(np.mean(pair_perturbed))
    return out


