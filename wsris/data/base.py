"""What every referring dataset yields for evaluation."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["RefSample", "ReferringDataset", "read_rgb"]


@dataclass
class RefSample:
    """One (image, expression, target mask) triple, at the ORIGINAL image resolution.

    ``object_masks`` holds every annotated object of the image (the target included); the
    trivial baselines of the evaluation draw on it. ``kind`` is the expression's type tag
    where the dataset has one (Shapes-Ref: attribute, relation, location, negation).
    """

    sample_id: str
    image_id: int | str
    image: np.ndarray  # HxWx3 uint8 RGB
    text: str
    mask: np.ndarray  # HxW bool
    object_masks: list[np.ndarray] = field(default_factory=list)
    kind: str | None = None
    ref_id: int | str | None = None  # the REFER ref the sentence belongs to, where known


@runtime_checkable
class ReferringDataset(Protocol):
    """A sequence of :class:`RefSample`; samples of one image are consecutive.

    ``image_key(i)`` must be cheap (no image decoding): the evaluation groups consecutive
    samples of one image into a single ``Segmenter.segment`` call.
    """

    @property
    def name(self) -> str: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> RefSample: ...

    def image_key(self, index: int) -> Hashable: ...


def read_rgb(path: Path) -> np.ndarray:
    """A dataset image as HxWx3 uint8 RGB; a missing or undecodable file is a
    :class:`~wsris.errors.DatasetError` naming the path."""
    import cv2

    from ..errors import DatasetError

    if not path.is_file():
        raise DatasetError(f"image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
