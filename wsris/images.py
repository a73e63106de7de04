"""Image input of every kind -> an RGB ``uint8`` array of shape ``(H, W, 3)``.

Accepted: a path (``str`` or ``Path``), a PIL image, a NumPy array (``HxWx3`` or
``HxWx4`` uint8 or float in [0, 1], ``HxW`` gray, uint16 scaled down) or a torch tensor
(``CxHxW`` with C in 1, 3, 4; uint8 or float in [0, 1]). EXIF orientation is applied;
palette, gray, 16-bit and RGBA images become RGB (alpha is dropped, colours kept).
Anything else raises :class:`~wsris.errors.ImageError` with the reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# 64 megapixels: an 8k x 8k photo. Larger inputs are refused before they are decoded,
# which also stops decompression bombs. Pass ``max_pixels`` to change it.
DEFAULT_MAX_PIXELS = 64_000_000

ImageInput = str | Path | Image.Image | np.ndarray | Any


def load_image(image: ImageInput, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` uint8 RGB array."""
    if isinstance(image, (str, Path)):
        array = _from_pil(_open(Path(image), max_pixels))
    elif isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels, "image")
        array = _from_pil(ImageOps.exif_transpose(image))
    elif isinstance(image, np.ndarray):
        array = _from_numpy(image)
    elif _is_tensor(image):
        array = _from_tensor(image)
    else:
        raise ImageError(
            f"cannot read an image from {type(image).__name__}; pass a path, a PIL image, "
            "a NumPy array or a torch tensor"
        )
    height, width = array.shape[:2]
    _check_size(width, height, max_pixels, "image")
    return np.ascontiguousarray(array)


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty: {path}")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit replaces PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            _check_size(img.width, img.height, max_pixels, str(path))
            img.load()
            return ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"not a readable image file: {path}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"cannot decode image {path}: {exc}") from exc


def _check_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has zero size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; resize it or raise max_pixels"
        )


def _from_pil(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _from_numpy(np.asarray(img))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("float image contains NaN or infinity")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"float images must hold values in [0, 1]; got [{lo:.3g}, {hi:.3g}]"
            )
        return np.round(array * 255.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0:
            raise ImageError(f"integer image has negative values (min {lo})")
        if hi <= 255:
            return array.astype(np.uint8)
        if hi <= 65535:  # 16-bit data
            return (array.astype(np.uint32) // 257).astype(np.uint8)
        raise ImageError(f"integer image values up to {hi} are not 8- or 16-bit")
    raise ImageError(f"unsupported image dtype {array.dtype}")


def _from_numpy(array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        raise ImageError(f"image array is empty (shape {array.shape})")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {array.shape}"
        )
    array = _to_uint8(array)
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    return array[:, :, :3]


def _is_tensor(obj: object) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(obj, torch.Tensor)


def _from_tensor(tensor: Any) -> np.ndarray:
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ImageError(
            f"image tensors must be CxHxW with C in 1, 3, 4; got shape {tuple(tensor.shape)}"
        )
    return _from_numpy(tensor.detach().cpu().permute(1, 2, 0).numpy())


_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def to_model_input(image: np.ndarray, preprocessing: dict[str, Any]) -> Any:
    """RGB uint8 ``(H, W, 3)`` -> normalised float ``[3, h, w]`` tensor at the model's
    input size (``preprocessing``: ``size``, ``mean``, ``std``, ``interpolation``), the
    same for inference and training."""
    import torch

    height, width = preprocessing["size"]
    if image.shape[:2] != (height, width):
        resample = _RESAMPLE[preprocessing.get("interpolation", "bicubic")]
        image = np.asarray(Image.fromarray(image).resize((width, height), resample))
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0)
    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32)
    return ((x - mean) / std).permute(2, 0, 1).contiguous()
