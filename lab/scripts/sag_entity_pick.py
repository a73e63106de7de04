"""Where a SaG model's localisation is lost: picking the entity, or the entities' shapes.

    python lab/scripts/sag_entity_pick.py MODEL [--limit 300] [--split val]

For the first N Shapes-Ref expressions of a split: each entity's hard mask (the tokens it
wins in ``A^slot``) is scored against the target mask on the token grid. Printed per kind:
``pick``, the share of expressions whose highest ``A^fuse`` entity is the target's best
entity; ``oracle_iou``, the mean IoU of that best entity (what a perfect pick would get);
``picked_iou``, the mean IoU of the entity picked; ``max_a_fuse``, the mean largest
``A^fuse`` weight (how sharply the text picks one entity). Then where the picked entity
lands (the object it covers most, read with the grammar's semantics): on the target, on a
relation's landmark, on another object the expression's head phrase fits (the other red
circle of "the red circle left of ..."), on any other object, or on the background.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

import wsris
from wsris.data.shapes import ShapesRef
from wsris.data.shapes_semantics import parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    seg = wsris.load(args.model, device="cpu")
    data = ShapesRef(args.split).referring()
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    lands: dict[str, Counter] = {}
    for i in range(min(args.limit, len(data))):
        s = data[i]
        stages = seg.segment(s.image, s.text).stages
        a_slot, a_fuse = stages["a_slot"], stages["a_fuse"]  # [K, h, w], [K]
        k = a_slot.shape[0]
        owner = a_slot.reshape(k, -1).argmax(0)
        target = torch.from_numpy(s.mask).float()[None, None]
        target = F.interpolate(target, size=a_slot.shape[1:], mode="area").flatten() > 0.5
        ious = []
        for e in range(k):
            mine = owner == e
            union = int((mine | target).sum())
            ious.append(int((mine & target).sum()) / union if union else 0.0)
        best, pick = int(np.argmax(ious)), int(a_fuse.argmax())
        row = (float(pick == best), ious[best], ious[pick], float(a_fuse.max()))
        rows.setdefault(str(s.kind), []).append(row)
        rows.setdefault("all", []).append(row)
        scene = data.scene(i // data.per_scene)
        land = _landing(owner == pick, a_slot.shape[1:], scene, i % data.per_scene, s.text)
        lands.setdefault(str(s.kind), Counter())[land] += 1
    for kind, v in sorted(rows.items()):
        a = np.array(v)
        print(f"{kind:10s} n={len(a):4d} pick={a[:, 0].mean():.3f} oracle_iou={a[:, 1].mean():.3f}"
              f" picked_iou={a[:, 2].mean():.3f} max_a_fuse={a[:, 3].mean():.2f}")
    print("where the picked entity lands (share of each kind's expressions):")
    for kind, c in sorted(lands.items()):
        n = sum(c.values())
        print(f"{kind:10s} " + " ".join(f"{k}={c[k] / n:.3f}" for k in LANDINGS))


LANDINGS = ("target", "landmark", "other_head", "other", "background")


def _landing(picked: torch.Tensor, grid, scene, j: int, text: str) -> str:
    """Which object the picked entity's tokens cover most, as one of :data:`LANDINGS`."""
    cover = []
    for o in scene.objects:
        m = F.interpolate(torch.from_numpy(o.mask).float()[None, None], size=grid, mode="area")
        cover.append(int((picked & (m.flatten() > 0.5)).sum()))
    if max(cover) == 0:
        return "background"
    obj = int(np.argmax(cover))
    parsed = parse(text)
    if obj == scene.expressions[j].target:
        return "target"
    if parsed.landmark is not None and parsed.landmark.matches(scene.objects[obj]):
        return "landmark"
    if parsed.head.matches(scene.objects[obj]):
        return "other_head"
    return "other"


if __name__ == "__main__":
    main()
