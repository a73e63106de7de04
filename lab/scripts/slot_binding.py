"""Slot binding of a SaG training run: best-slot IoU per ground-truth object on val.

    python lab/scripts/slot_binding.py RECIPE.yaml [--scenes 100] [--checkpoint PATH | --model M]
                                  [--iterations T]

Loads OUTPUT/checkpoints/last.pt (or --checkpoint, or the weights of a model folder or
name, --model, e.g. a bundled model with the recipe it was trained with) into the
recipe's model, discovers
the slots of the first N Shapes-Ref val scenes (seeded sampling; for a model with
``slot_split: pieces``, the entities its text is fused with) and prints the mean
best-slot IoU per object and the share of objects with a slot of IoU >= 0.5 and 0.75
(the binding milestone of the SaG issue is a mean >= 0.7), and the mean apart for objects
whose colour is unique in their scene and those that share it with another object (a
slot that groups by colour alone binds the first kind only).

``--components`` also scores the connected pieces of each hard slot mask as if each
were a slot of its own: a diagnostic of how much of the gap is slots that cover two
disconnected objects (e.g. two shapes of one colour) rather than slots with poor borders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from wsris.methods.sag.slots import best_slot_iou, slot_masks
from wsris.training import TrainConfig
from wsris.training.data import referring_dataset
from wsris.training.objectives import build_objective


def component_masks(a_slot: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The 8-connected pieces of every hard slot mask, ``[P, H, W]`` bool."""
    pieces = []
    for mask in slot_masks(a_slot, size).numpy().astype(np.uint8):
        n, labels = cv2.connectedComponents(mask, connectivity=8)
        pieces += [labels == k for k in range(1, n)]
    return torch.from_numpy(np.stack(pieces))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--model", default=None, help="a model folder or name instead")
    parser.add_argument("--iterations", type=int, default=None,
                        help="slot-attention iterations at inference (default: the model's)")
    parser.add_argument("--components", action="store_true",
                        help="also score each slot's connected pieces as separate slots")
    args = parser.parse_args()
    cfg = TrainConfig.from_yaml(args.recipe)
    obj = build_objective(cfg, torch.device("cpu"))
    if args.model is not None:
        import wsris

        obj.model.load_state_dict(wsris.load(args.model, device="cpu").model.state_dict())
        state = {"step": args.model}
    else:
        path = args.checkpoint or Path(cfg.output_dir) / "checkpoints" / "last.pt"
        state = torch.load(path, map_location="cpu", weights_only=True)
        obj.model.load_state_dict(state["model"])
    obj.model.eval()
    if args.iterations is not None:
        obj.model.config.iterations = args.iterations
    data = referring_dataset(cfg.data.get("val", "shapes:val"))
    ious, shared, piece_ious = [], [], []
    with torch.no_grad():
        for scene in range(min(args.scenes, len(data) // data.per_scene)):
            sample = data[scene * data.per_scene]
            pixels = obj.collator([sample]).pixel_values
            _, slots = obj.model.encode_slots(pixels, init="sample", seed=0)
            slots = obj.model.entities(slots)  # the pieces, for a slot_split model
            h, w = slots.grid
            masks = torch.stack([torch.from_numpy(m) for m in sample.object_masks])
            ious.append(best_slot_iou(slots.a_slot[0].reshape(-1, h, w), masks))
            if args.components:
                pieces = component_masks(slots.a_slot[0].reshape(-1, h, w), masks.shape[-2:])
                piece_ious.append(best_slot_iou(pieces.float(), masks))
            colours = [o.colour for o in data.scene(data.image_key(scene * data.per_scene)).objects]
            shared.append(torch.tensor([colours.count(c) > 1 for c in colours]))
    iou = torch.cat(ious)
    half, most = float((iou >= 0.5).float().mean()), float((iou >= 0.75).float().mean())
    print(
        f"step {state['step']}: best-slot IoU per object {float(iou.mean()):.3f} "
        f"({len(iou)} objects in {len(ious)} scenes); IoU >= 0.5: {half:.3f}; "
        f">= 0.75: {most:.3f}"
    )
    same = torch.cat(shared)
    for name, pick in (("unique colour", ~same), ("shared colour", same)):
        if pick.any():
            print(f"  {name}: {float(iou[pick].mean()):.3f} over {int(pick.sum())} objects")
    if piece_ious:
        pieces = torch.cat(piece_ious)
        print(f"  connected pieces of the slots as slots: {float(pieces.mean()):.3f} "
              f"(unique colour {float(pieces[~same].mean()):.3f}, "
              f"shared colour {float(pieces[same].mean()):.3f})")


if __name__ == "__main__":
    main()
