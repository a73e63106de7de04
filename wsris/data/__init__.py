"""Datasets: the Shapes-Ref procedural benchmark and REFER-format datasets (RefCOCO...).

* :class:`ShapesRef` - procedural scenes, ``dataset[i]`` a :class:`ShapesSample`;
  ``.referring()`` gives one :class:`RefSample` per expression for evaluation.
* :class:`ReferDataset` - RefCOCO / RefCOCO+ / G-Ref (or a Shapes-Ref export) on disk.
* :class:`PhraseCutDataset` - VGPhraseCut on disk.
* :func:`open_dataset` - either, from a spec such as ``shapes:val`` or
  ``refcoco+:unc:val@/data/refer``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562), so the text side can read Shapes-Ref's words
# without OpenCV and the dataset readers.
_EXPORTS = {
    "ReferringDataset": ".base", "RefSample": ".base",
    "export_shapes": ".export",
    "polygons_to_mask": ".masks", "rle_decode": ".masks", "rle_encode": ".masks",
    "segmentation_to_mask": ".masks",
    "PhraseCutDataset": ".phrasecut",
    "ReferDataset": ".refer", "load_refs": ".refer",
    "ShapesConfig": ".shapes", "ShapesRef": ".shapes", "ShapesReferring": ".shapes",
    "ShapesSample": ".shapes", "generate_sample": ".shapes", "variant_config": ".shapes",
    "DataSpec": ".spec", "open_dataset": ".spec", "parse_data_spec": ".spec",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataSpec",
    "PhraseCutDataset",
    "RefSample",
    "ReferDataset",
    "ReferringDataset",
    "ShapesConfig",
    "ShapesRef",
    "ShapesReferring",
    "ShapesSample",
    "export_shapes",
    "generate_sample",
    "load_refs",
    "open_dataset",
    "parse_data_spec",
    "polygons_to_mask",
    "rle_decode",
    "rle_encode",
    "segmentation_to_mask",
    "variant_config",
]
