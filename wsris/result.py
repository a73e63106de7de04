"""What ``Segmenter.segment`` returns: a mask at the original size and the maps behind it.

Box formats, in pixel units of the original image, for a non-empty mask:

* ``bbox``: COCO's ``(x, y, w, h)``: the top-left set pixel and the width and height of
  the tightest box holding every set pixel (what ``"bbox"`` means in COCO files and in
  :mod:`wsris.data`);
* ``bbox_xyxy``: ``(x0, y0, x1, y1)`` with ``x1 = x + w`` and ``y1 = y + h``: corners of a
  half-open box (the last set column is ``x1 - 1``), so ``(x1 - x0) * (y1 - y0)`` is
  the box area. ``to_supervision()`` uses the same corners.

An empty mask has no box: both are None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InvalidInputError


@dataclass(repr=False)
class SegmentationResult:
    """One expression's segmentation of one image.

    ``mask`` is bool ``(H, W)`` at the ORIGINAL image size; ``heatmap`` is float32
    ``(H, W)`` in [0, 1] at the same size (the min-max normalised localisation map that
    was thresholded, or from which a proposal was selected). ``stages`` holds the
    method's intermediate outputs at their own (low) resolution. ``in_domain`` and
    ``domain_score`` say whether the image looks like what the model was trained on
    (see :mod:`wsris.domain`; None for a model whose config names no domain): a mask
    with ``in_domain`` False is unreliable.
    """

    text: str
    mask: np.ndarray
    heatmap: np.ndarray
    threshold: float
    model: str
    method: str
    score: float | None = None
    stages: dict[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = field(default=None, repr=False)
    in_domain: bool | None = None
    domain_score: float | None = None

    def __repr__(self) -> str:
        """One line: the arrays stay attributes (``mask``, ``heatmap``, ``stages``)."""
        from .text import shorten

        score = "None" if self.score is None else f"{self.score:.3f}"
        stages = ", ".join(self.stages) or "none"
        return (f"SegmentationResult(text={shorten(self.text, 80)}, model={self.model!r}, "
                f"area={self.area} px, bbox={self.bbox}, score={score}, "
                f"threshold={self.threshold:g}, size={self.mask.shape[1]}x{self.mask.shape[0]}, "
                f"stages=[{stages}])")

    @property
    def area(self) -> int:
        """Number of mask pixels."""
        return int(self.mask.sum())

    @property
    def bbox(self) -> tuple[int, int, int, int] | None:
        """COCO ``(x, y, w, h)`` of the mask; None for an empty mask."""
        box = self.bbox_xyxy
        if box is None:
            return None
        x0, y0, x1, y1 = box
        return x0, y0, x1 - x0, y1 - y0

    @property
    def bbox_xyxy(self) -> tuple[int, int, int, int] | None:
        """``(x0, y0, x1, y1)`` of the mask, x1/y1 exclusive; None for an empty mask."""
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            return None
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    def to_rle(self, compress: bool = True) -> dict[str, Any]:
        """The mask as COCO run-length encoding ``{"size": [h, w], "counts": ...}``.

        ``counts`` is COCO's compressed string (as in COCO result files; pycocotools'
        ``mask.decode`` reads it) or, with ``compress=False``, the list of run lengths
        over the column-major mask, starting with a run of background.
        """
        from .data.masks import rle_encode

        return rle_encode(self.mask, compress=compress)

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """One entry of a COCO results file (segmentation task): ``image_id``,
        ``category_id``, ``segmentation`` (compressed RLE), ``bbox`` (``x, y, w, h``),
        ``area`` (mask pixels) and ``score``."""
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "segmentation": self.to_rle(compress=True),
            "bbox": list(self.bbox or (0, 0, 0, 0)),
            "area": self.area,
            "score": 1.0 if self.score is None else float(self.score),
        }

    def overlay(
        self,
        image: np.ndarray | None = None,
        color: tuple[int, int, int] | None = None,
        alpha: float = 0.6,
        outline: bool = True,
    ) -> Image.Image:
        """The image with the mask tinted and outlined.

        ``color=None`` (the default) picks, per image, the saturated colour whose tint
        changes the pixels under the mask most while keeping them distinct from those
        around it (:func:`wsris.colours.contrasting_colour`), so the fill shows on a red,
        a magenta or a white object alike; pass an RGB tuple to
        fix it. The outline is two-tone, a light line edged in dark on both sides, visible on any
        background.
        """
        from .colours import OUTLINE_DARK, OUTLINE_LIGHT, contrasting_colour

        base = self.image if image is None else image
        if base is None:
            raise ValueError("no image kept on this result; pass image=")
        if base.shape[:2] != self.mask.shape:
            raise ValueError(f"image size {base.shape[:2]} differs from mask {self.mask.shape}")
        if color is None:
            color = contrasting_colour(base[self.mask], base[_ring(self.mask)], alpha)
        out = base.astype(np.float32).copy()
        tint = np.asarray(color, dtype=np.float32)
        out[self.mask] = (1 - alpha) * out[self.mask] + alpha * tint
        out = np.ascontiguousarray(np.clip(np.round(out), 0, 255).astype(np.uint8))
        if outline and self.mask.any():
            import cv2

            contours, _ = cv2.findContours(
                self.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            thickness = max(1, round(min(self.mask.shape) / 200))
            cv2.drawContours(out, contours, -1, OUTLINE_DARK, 3 * thickness)
            cv2.drawContours(out, contours, -1, OUTLINE_LIGHT, thickness)
        return Image.fromarray(out)

    def heatmap_image(self) -> Image.Image:
        """The heat map as a colour image (OpenCV's JET colour map)."""
        import cv2

        gray = np.round(self.heatmap * 255).astype(np.uint8)
        return Image.fromarray(cv2.applyColorMap(gray, cv2.COLORMAP_JET)[:, :, ::-1])

    def mask_image(self) -> Image.Image:
        """The mask as an 8-bit gray image: 255 inside, 0 outside, at the original size."""
        return Image.fromarray(self.mask.astype(np.uint8) * 255)

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write the mask: 255 inside, 0 outside, at the original size. PNG (lossless) by
        default, and a name that is not ``.png`` is refused unless ``format`` (a PIL
        format name such as ``"BMP"``) is given explicitly."""
        path = Path(path)
        if format is None and path.suffix.lower() != ".png":
            raise InvalidInputError(
                f"mask path {path} is not .png; masks are written as PNG (lossless), or pass "
                "format= to choose another format explicitly"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.mask_image().save(path, format=format or "PNG")
        return path

    def to_supervision(self) -> Any:
        """The mask as a ``supervision.Detections`` with one detection.

        ``xyxy`` holds :attr:`bbox_xyxy` (half-open corners, what
        ``supervision.mask_to_xyxy(..., coordinate_convention="exclusive")`` gives;
        zeros for an empty mask), ``mask`` the ``(1, H, W)`` mask, ``confidence`` the
        score and ``data["text"]`` the expression.
        """
        try:
            import supervision as sv
        except ImportError as exc:
            raise ImportError("to_supervision() needs `pip install supervision`") from exc
        box = self.bbox_xyxy or (0, 0, 0, 0)
        return sv.Detections(
            xyxy=np.asarray([box], dtype=np.float32),
            mask=self.mask[None],
            confidence=None if self.score is None else np.asarray([self.score], np.float32),
            data={"text": np.asarray([self.text])},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no arrays)."""
        return {
            "text": self.text,
            "model": self.model,
            "method": self.method,
            "threshold": self.threshold,
            "area": self.area,
            "bbox": self.bbox,  # COCO (x, y, w, h)
            "bbox_xyxy": self.bbox_xyxy,
            "score": self.score,
            "size": list(self.mask.shape),
            "in_domain": self.in_domain,
            "domain_score": self.domain_score,
        }


def _ring(mask: np.ndarray, width: int = 5) -> np.ndarray:
    """The pixels within ``width`` of the mask, outside it."""
    import cv2

    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
