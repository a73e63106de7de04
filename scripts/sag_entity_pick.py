"""Where a SaG model's localisation is lost: picking the entity, or the entities' shapes.

    python scripts/sag_entity_pick.py MODEL [--limit 300]

For the first N Shapes-Ref val expressions: each entity's hard mask (the tokens it wins
in ``A^slot``) is scored against the target mask on the token grid. Printed per kind:
``pick``, the share of expressions whose highest ``A^fuse`` entity is the target's best
entity; ``oracle_iou``, the mean IoU of that best entity (what a perfect pick would get);
``picked_iou``, the mean IoU of the entity picked; ``max_a_fuse``, the mean largest
``A^fuse`` weight (how sharply the text picks one entity).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import wsris
from wsris.data.shapes import ShapesRef


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=300)
    args = ap.parse_args()
    seg = wsris.load(args.model, device="cpu")
    data = ShapesRef("val").referring()
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
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
    for kind, v in sorted(rows.items()):
        a = np.array(v)
        print(f"{kind:10s} n={len(a):4d} pick={a[:, 0].mean():.3f} oracle_iou={a[:, 1].mean():.3f}"
              f" picked_iou={a[:, 2].mean():.3f} max_a_fuse={a[:, 3].mean():.2f}")


if __name__ == "__main__":
    main()
