"""Write Shapes-Ref splits in the REFER format, so one loader reads generated and real data.

``export_shapes(DIR, ["val"], n=100)`` writes::

    DIR/shapes/refs(unc).p       one ref per (scene, referred object), its expressions as
                                 sentences (each also carries its "kind" tag)
    DIR/shapes/instances.json    images, annotations (exact masks as compressed RLE),
                                 categories (one per shape)
    DIR/images/shapes_<split>_<index>.png

and ``ReferDataset(DIR, "shapes", "unc", "val")`` (or ``--data shapes:unc:val@DIR``) reads
it back with the same masks, sentences and pixels.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2

from ..errors import DatasetError, InvalidInputError
from .masks import rle_encode
from .shapes import SHAPES, SPLITS, ShapesConfig, ShapesRef, variant_config

__all__ = ["export_shapes"]

# Image ids are unique across splits: split code x 10^7 + scene index.
_ID_STRIDE = 10_000_000


def export_shapes(out_dir: str | Path, splits: Sequence[str], n: int | None = None, *,
                  seed: int = 0, variant: str = "default", config: ShapesConfig | None = None,
                  name: str = "shapes", overwrite: bool = False,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Export ``n`` scenes (default: the split's size) of each split; returns a summary.

    ``progress`` is called with 1 after each scene (e.g. ``tqdm.update``).
    """
    out_dir = Path(out_dir)
    cfg = config if config is not None else variant_config(variant)
    if not splits:
        raise InvalidInputError("give at least one split")
    for split in splits:
        if split not in SPLITS:
            raise InvalidInputError(f"unknown Shapes-Ref split {split!r}; known: "
                                    f"{', '.join(SPLITS)}")
    data_dir = out_dir / name
    refs_path = data_dir / "refs(unc).p"
    inst_path = data_dir / "instances.json"
    if not overwrite and (refs_path.exists() or inst_path.exists()):
        raise DatasetError(f"{data_dir} already holds an export; pass overwrite=True "
                           "(--overwrite) to replace it")
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)

    categories = [{"id": i + 1, "name": s, "supercategory": "shape"}
                  for i, s in enumerate(SHAPES)]
    cat_id = {c["name"]: c["id"] for c in categories}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    sent_id = 0
    for split in splits:
        ds = ShapesRef(split, variant=variant, seed=seed, config=cfg,
                       length=n if n is not None else None)
        for index in range(len(ds)):
            sample = ds[index]
            image_id = SPLITS[split] * _ID_STRIDE + index
            file_name = f"{name}_{split}_{index:06d}.png"
            path = image_dir / file_name
            if not cv2.imwrite(str(path), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)):
                raise DatasetError(f"cannot write image {path}")
            h, w = sample.image.shape[:2]
            images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
            ann_ids = []
            for k, obj in enumerate(sample.objects):
                ann_id = image_id * 16 + k
                ann_ids.append(ann_id)
                annotations.append({
                    "id": ann_id, "image_id": image_id, "category_id": cat_id[obj.shape],
                    "segmentation": rle_encode(obj.mask), "area": obj.area,
                    "bbox": list(obj.bbox), "iscrowd": 0,
                    "attributes": {"colour": obj.colour, "size": obj.size},
                })
            by_target: dict[int, list[Any]] = {}
            for e in sample.expressions:
                by_target.setdefault(e.target, []).append(e)
            for target, exprs in by_target.items():
                sentences = []
                for e in exprs:
                    sentences.append({"sent_id": sent_id, "sent": e.text, "raw": e.text,
                                      "tokens": e.text.split(), "kind": e.kind})
                    sent_id += 1
                obj = sample.objects[target]
                refs.append({
                    "ref_id": len(refs), "ann_id": ann_ids[target], "image_id": image_id,
                    "split": split, "category_id": cat_id[obj.shape], "file_name": file_name,
                    "sentences": sentences, "sent_ids": [s["sent_id"] for s in sentences],
                })
            if progress is not None:
                progress(1)

    info = {"description": f"Shapes-Ref ({variant}) exported by wsris", "seed": seed,
            "variant": variant, "splits": list(splits), "image_size": cfg.image_size}
    inst_path.write_text(json.dumps({"info": info, "images": images,
                                     "annotations": annotations, "categories": categories}))
    with open(refs_path, "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return {"dir": str(out_dir), "images": len(images), "refs": len(refs),
            "sentences": sent_id, "annotations": len(annotations)}
