"""Choose the chunk pipeline's inference settings on a held-out split (not the one that is
reported): Grad-CAM layer, word average with or without [CLS], affinity on or off, map
smoothing, number of proposals and the proposal rule, all from one pass over the samples.

    python lab/scripts/chunk_inference_sweep.py MODEL [--data shapes:test] [--limit 400]

Prints mIoU (%) of the proposal mask for every combination, best first, and the share of
samples whose map ranks the target first among the scene's objects ("pick").
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

import wsris
from wsris.data.spec import open_dataset
from wsris.methods.chunk.affinity import patch_affinity, refine_with_affinity
from wsris.methods.chunk.gradcam import compute_gradcam, default_word_mask, sentence_map
from wsris.methods.chunk.pipeline import proposal_image, smooth_map
from wsris.methods.chunk.proposals import (
    generate_proposals,
    select_proposal,
    select_proposal_by_mean,
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", default="shapes:test")
    ap.add_argument("--limit", type=int, default=400)
    args = ap.parse_args()
    seg = wsris.load(args.model, device="cpu")
    model, cfg = seg.model, seg.model.config
    data = open_dataset(args.data)
    layers = range(cfg.fusion_layer, cfg.text_layers)
    scores: dict[tuple, list[float]] = defaultdict(list)
    for i in range(min(args.limit, len(data))):
        s = data[i]
        pixels = seg.preprocess(s.image)
        tb = seg.tokenizer([s.text])
        with torch.no_grad():
            vision = model.encode_image(pixels, 0)
        affinity = patch_affinity(vision.attention)
        small = proposal_image(s.image)
        props = generate_proposals(small, max_proposals=50)
        gt = s.mask
        target = next(k for k, m in enumerate(s.object_masks) if (m == gt).all())
        for layer in layers:
            with torch.enable_grad():
                cam = compute_gradcam(model, vision.tokens, tb.input_ids, tb.attention_mask, layer)
            for avg in ("words", "tokens_with_cls"):
                wmask = default_word_mask(tb.attention_mask) if avg == "words" else \
                    tb.attention_mask.bool()
                base = sentence_map(cam.maps, wmask)
                for aff, sigma in ((False, 0.0), (True, 0.0), (False, 0.5), (False, 1.0)):
                    low = refine_with_affinity(base, affinity)[0] if aff else base[0]
                    low = smooth_map(low[None], sigma)[0]
                    up = F.interpolate(low[None, None].float(), size=small.shape[:2],
                                       mode="bilinear", align_corners=False)[0, 0].numpy()
                    up = (up - up.min()) / (up.max() - up.min() + 1e-9)
                    full = F.interpolate(low[None, None].float(), size=gt.shape,
                                         mode="bilinear", align_corners=False)[0, 0].numpy()
                    means = [full[m].mean() for m in s.object_masks]
                    aff = (aff, sigma)
                    scores[(layer, avg, aff, "pick", 0)].append(
                        float(int(np.argmax(means)) == target))
                    for mp, rule in itertools.product((20, 50), ("iou", "mean")):
                        p = props[:mp]
                        if rule == "iou":
                            k, _ = select_proposal(p, up, 0.3)
                        else:
                            k, _ = select_proposal_by_mean(p, up, 0.01)
                        mask = up >= 0.3 if k < 0 else p[k]
                        mask = np.asarray(
                            F.interpolate(torch.from_numpy(mask)[None, None].float(),
                                          size=gt.shape, mode="nearest")[0, 0]) > 0.5
                        scores[(layer, avg, aff, rule, mp)].append(iou(mask, gt))
    rows = sorted(((np.mean(v) * 100, k) for k, v in scores.items() if k[3] != "pick"),
                  reverse=True)
    print(f"{args.data}, {min(args.limit, len(data))} samples; mIoU % (layer, average, "
          "(affinity, map_sigma), rule, proposals)")
    for value, key in rows:
        pick = np.mean(scores[(*key[:3], "pick", 0)]) * 100
        print(f"{value:6.2f}  pick {pick:5.1f}  {key}")


if __name__ == "__main__":
    main()
