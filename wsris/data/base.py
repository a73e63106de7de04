"""What every referring dataset yields for evaluation."""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["RefSample", "ReferringDataset", "read_rgb", "confined_path"]


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


def read_rgb(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """A dataset image as HxWx3 uint8 RGB; a missing or undecodable file, or one larger
    than ``max_pixels`` (default: the limit of ``wsris segment``, read from the header
    before anything is decoded) is a :class:`~wsris.errors.DatasetError` naming the path."""
    import cv2
    from PIL import Image

    from ..errors import DatasetError
    from ..images import DEFAULT_MAX_PIXELS

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if not path.is_file():
        raise DatasetError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as header:  # reads the header only
                width, height = header.size
    except Image.DecompressionBombError as exc:  # far beyond any limit: PIL's own guard
        raise DatasetError(f"{path} is over the pixel limit of {limit:,} ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - any failure to identify means unusable
        raise DatasetError(f"cannot decode image: {path}") from exc
    if width * height > limit:
        raise DatasetError(f"{path} declares {width}x{height} = {width * height:,} pixels, "
                           f"over the pixel limit of {limit:,}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def confined_path(folder: Path, name: Any, what: str) -> Path:
    """``folder / name`` for a dataset's relative file name; a name that is not a
    non-empty string, is absolute or climbs out of ``folder`` (``..``) is a
    :class:`~wsris.errors.DatasetError`."""
    import os

    from ..errors import DatasetError

    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise DatasetError(f"{what}: file name {name!r:.80} is not a usable file name")
    normal = os.path.normpath(name)
    if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
        raise DatasetError(f"{what}: file name {name!r:.80} is outside the image folder "
                           f"{folder}")
    return folder / normal
