"""What ``Segmenter.segment`` returns: a mask at the original size and the maps behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InvalidInputError


@dataclass
class SegmentationResult:
    """One expression's segmentation of one image.

    ``mask`` is bool ``(H, W)`` at the ORIGINAL image size; ``heatmap`` is float32
    ``(H, W)`` in [0, 1] at the same size (the min-max normalised localisation map that
    was thresholded, or from which a proposal was selected). ``stages`` holds the
    method's intermediate outputs at their own (low) resolution.
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

    @property
    def area(self) -> int:
        """Number of mask pixels."""
        return int(self.mask.sum())

    @property
    def bbox(self) -> tuple[int, int, int, int] | None:
        """``(x0, y0, x1, y1)`` of the mask, exclusive of x1/y1; None for an empty mask."""
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            return None
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    def overlay(
        self,
        image: np.ndarray | None = None,
        color: tuple[int, int, int] = (255, 48, 48),
        alpha: float = 0.5,
        outline: bool = True,
    ) -> Image.Image:
        """The image with the mask tinted in ``color`` (and its outline drawn)."""
        base = self.image if image is None else image
        if base is None:
            raise ValueError("no image kept on this result; pass image=")
        if base.shape[:2] != self.mask.shape:
            raise ValueError(f"image size {base.shape[:2]} differs from mask {self.mask.shape}")
        out = base.astype(np.float32).copy()
        tint = np.asarray(color, dtype=np.float32)
        out[self.mask] = (1 - alpha) * out[self.mask] + alpha * tint
        if outline and self.mask.any():
            import cv2

            contours, _ = cv2.findContours(
                self.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            out = np.ascontiguousarray(out.astype(np.uint8))
            thickness = max(1, round(min(self.mask.shape) / 200))
            cv2.drawContours(out, contours, -1, color, thickness)
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))

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

    def to_supervision(self):
        """The mask as a ``supervision.Detections`` with one detection."""
        try:
            import supervision as sv
        except ImportError as exc:
            raise ImportError("to_supervision() needs `pip install supervision`") from exc
        box = self.bbox or (0, 0, 0, 0)
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
            "bbox": self.bbox,
            "score": self.score,
            "size": list(self.mask.shape),
        }
