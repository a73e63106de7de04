"""Datasets: the Shapes-Ref procedural benchmark and REFER-format datasets (RefCOCO...).

* :class:`ShapesRef` - procedural scenes, ``dataset[i]`` a :class:`ShapesSample`;
  ``.referring()`` gives one :class:`RefSample` per expression for evaluation.
* :class:`ReferDataset` - RefCOCO / RefCOCO+ / G-Ref (or a Shapes-Ref export) on disk.
* :class:`PhraseCutDataset` - VGPhraseCut on disk.
* :func:`open_dataset` - either, from a spec such as ``shapes:val`` or
  ``refcoco+:unc:val@/data/refer``.
"""

from __future__ import annotations

from .base import ReferringDataset, RefSample
from .export import export_shapes
from .masks import polygons_to_mask, rle_decode, rle_encode, segmentation_to_mask
from .phrasecut import PhraseCutDataset
from .refer import ReferDataset, load_refs
from .shapes import (
    ShapesConfig,
    ShapesRef,
    ShapesReferring,
    ShapesSample,
    generate_sample,
    variant_config,
)
from .spec import DataSpec, open_dataset, parse_data_spec

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
