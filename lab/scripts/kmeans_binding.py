"""Which image features group Shapes-Ref objects? k-means over fixed features, scored like
slot binding (best-slot IoU per object, as lab/scripts/slot_binding.py).

    python lab/scripts/kmeans_binding.py [--scenes 100]

Features: the frozen ImageNet EfficientNet-Lite0 stem at stride 8 (what `sag_v2` slots
attend over) and stride 4, and plain patch colours at stride 8 and 4; each clustered with
K = 8 (the models' slot count) and K = objects + 1, with and without the token position
appended. A diagnostic of the input, not of a model: if k-means on a feature cannot
separate the objects, slot attention over it starts from the same handicap.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from wsris.backbones.stems import EfficientNetStemPatchEmbed
from wsris.data.shapes import ShapesRef
from wsris.methods.sag.slots import best_slot_iou
from wsris.training.warm_start import load_efficientnet_stem

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def positions(side: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    return torch.stack([ys, xs], -1).reshape(-1, 2)


def cluster(feat: torch.Tensor, side: int, k: int, pos_weight: float) -> torch.Tensor:
    """One-hot ``[k, side, side]`` k-means assignment of ``feat`` ``[side*side, C]``,
    channels standardised and scaled to unit total variance, position appended."""
    f = (feat - feat.mean(0)) / (feat.std(0) + 1e-6) / np.sqrt(feat.shape[1])
    x = torch.cat([f, pos_weight * positions(side)], 1).numpy()
    labels = KMeans(k, n_init=4, random_state=0).fit_predict(x)
    return torch.from_numpy(np.eye(k)[labels].T.reshape(k, side, side)).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=100)
    args = ap.parse_args()
    stem = EfficientNetStemPatchEmbed(img_size=128, patch_size=8, embed_dim=8)
    load_efficientnet_stem(stem)
    stem.eval()
    net = stem.backbone  # conv_stem, bn1, stage 1, stage 2 (stride 4), stage 3 (stride 8)
    scenes = ShapesRef("val")
    scores: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for i in range(args.scenes):
            scene = scenes[i]
            img = torch.from_numpy(np.asarray(scene.image)).permute(2, 0, 1).float() / 255
            px = ((img - MEAN) / STD)[None]
            s4 = net[:4](px)
            s8 = net[4](s4)
            masks = torch.stack([torch.from_numpy(o.mask) for o in scene.objects])
            feats = {
                "EfficientNet stride 8": (s8[0].flatten(1).T, 16),
                "EfficientNet stride 4": (s4[0].flatten(1).T, 32),
                "patch colour stride 8": (F.avg_pool2d(px, 8)[0].flatten(1).T, 16),
                "patch colour stride 4": (F.avg_pool2d(px, 4)[0].flatten(1).T, 32),
            }
            for name, (f, side) in feats.items():
                for k_name, k in (("8", 8), ("objects+1", len(masks) + 1)):
                    for pos in (0.0, 0.5):
                        key = f"{name:22s} K={k_name:9s} position {pos}"
                        slots = cluster(f, side, k, pos)
                        scores.setdefault(key, []).append(best_slot_iou(slots, masks))
    for key, v in sorted(scores.items(), key=lambda kv: -float(torch.cat(kv[1]).mean())):
        print(f"{key}  {float(torch.cat(v).mean()):.3f}")


if __name__ == "__main__":
    main()
