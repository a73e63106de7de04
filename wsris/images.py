"""Image input of every kind -> an RGB ``uint8`` array of shape ``(H, W, 3)``.

Accepted: a path (``str`` or ``Path``), an ``http://`` or ``https://`` URL (``str``), a
PIL image, a NumPy array (``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``) or a torch tensor
(``CxHxW`` with C in 1, 3, 4). EXIF orientation is applied; palette and gray images
become RGB.

Values are scaled by their dtype, never by what they happen to hold: ``uint8`` as is,
``uint16`` (and 16-bit image files) divided by 257 (65535 -> 255), float in [0, 1] times
255, bool to 0/255; other integer dtypes must hold 8-bit values (0..255), anything
outside that range is refused rather than guessed at. Transparent images (RGBA, LA,
palette with transparency) are composited over a WHITE background (:data:`BACKGROUND`),
so a transparent pixel is white whatever colour it stores.

URLs are fetched within one total deadline (:data:`URL_TIMEOUT_S`, ``$WSRIS_URL_TIMEOUT``)
and a size limit (:data:`MAX_DOWNLOAD_BYTES`, checked against ``Content-Length`` before
and against the bytes received while downloading), following redirects only to http(s)
on the same host and refusing private, loopback and link-local destinations unless
allowed (see :mod:`wsris.url_fetch`), then decoded with the same limits as files.
Anything else raises :class:`~wsris.errors.ImageError` with the reason.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, InvalidInputError

# 64 megapixels: an 8k x 8k photo. Larger inputs are refused before they are decoded,
# which also stops decompression bombs. Pass ``max_pixels`` to change it.
DEFAULT_MAX_PIXELS = 64_000_000
#: Transparent pixels are composited over this colour.
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
#: Seconds a URL has to connect and send everything (the default deadline).
URL_TIMEOUT_S = 20.0
#: Largest image download accepted (bytes).
MAX_DOWNLOAD_BYTES = 50_000_000
URL_SCHEMES = ("http://", "https://")

ImageInput = str | Path | Image.Image | np.ndarray | Any


def load_image(image: ImageInput, max_pixels: int | None = DEFAULT_MAX_PIXELS, *,
               url_timeout: float | None = None,
               allow_private: bool | None = None) -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` uint8 RGB array. ``url_timeout``
    and ``allow_private`` apply to URLs (see :func:`fetch_url`)."""
    if isinstance(image, str) and is_url(image):
        body = fetch_url(image, url_timeout, allow_private=allow_private)
        array = _from_pil(_decode(body, image, max_pixels))
    elif isinstance(image, (str, Path)):
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


def is_url(text: str) -> bool:
    """True for an ``http://`` or ``https://`` address (any case)."""
    return text[:8].lower().startswith(URL_SCHEMES)


def fetch_url(
    url: str, timeout: float | None = None, max_bytes: int = MAX_DOWNLOAD_BYTES,
    allow_private: bool | None = None,
) -> bytes:
    """The body of ``url``: at most ``max_bytes`` (refused from ``Content-Length`` before
    downloading and while reading), all of it within ``timeout`` seconds (connecting,
    headers and body together; default ``$WSRIS_URL_TIMEOUT`` or 20 s). Redirects only to
    http(s) on the same host; private, loopback and link-local destinations are refused
    unless ``allow_private`` (or ``$WSRIS_ALLOW_PRIVATE_URLS=1``). See
    :mod:`wsris.url_fetch`."""
    from .url_fetch import fetch

    return fetch(url, max_bytes=max_bytes, deadline=timeout, allow_private=allow_private)


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty: {path}")
    return _decode(path, str(path), max_pixels)


def _decode(source: Path | bytes, what: str, max_pixels: int | None) -> Image.Image:
    """Open and fully decode a file or in-memory bytes, refusing oversized images before
    their pixels are decoded."""
    try:
        with warnings.catch_warnings():
            # Our own pixel limit replaces PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            _check_size(img.width, img.height, max_pixels, what)
            img.load()
            return ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{what}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"not a readable image: {what}") from exc
    except Exception as exc:  # truncated or corrupt data: PIL raises many types
        raise ImageError(f"cannot decode image {what}: {exc}") from exc


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
    if mode.startswith("I;16"):
        return _from_numpy(np.asarray(img).astype(np.uint16))
    if mode == "I":  # 32-bit integer pixels: how PIL reads 16-bit gray files
        array = np.asarray(img)
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 65535:
            raise ImageError(f"32-bit integer image with values in [{lo}, {hi}]: not 16-bit")
        return _from_numpy(array.astype(np.uint16))
    if mode == "F":
        return _from_numpy(np.asarray(img))
    if mode in ("P", "PA"):
        has_alpha = "transparency" in img.info or mode == "PA"
        img = img.convert("RGBA" if has_alpha else "RGB")
    if img.mode in ("LA", "La", "RGBa", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        return _composite(np.asarray(img, dtype=np.uint8))
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageError(f"cannot convert a {img.mode} image to RGB: {exc}") from exc
    return np.asarray(img, dtype=np.uint8)


def _composite(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 -> RGB over :data:`BACKGROUND`, rounded to nearest."""
    alpha = rgba[:, :, 3:4].astype(np.uint32)
    background = np.asarray(BACKGROUND, dtype=np.uint32)
    mixed = rgba[:, :, :3].astype(np.uint32) * alpha + background * (255 - alpha)
    return ((mixed + 127) // 255).astype(np.uint8)


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
    if array.dtype == np.uint16:  # 16-bit data: the dtype decides the scale, not the values
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise ImageError(
                f"{array.dtype} image with values in [{lo}, {hi}]: integer images other than "
                "uint16 must hold 8-bit values (0..255); pass 16-bit data as uint16"
            )
        return array.astype(np.uint8)
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
    if array.shape[2] == 4:
        return _composite(array)
    return array


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
    tensor = tensor.detach().cpu().permute(1, 2, 0)
    if str(tensor.dtype) in ("torch.bfloat16", "torch.float16"):
        tensor = tensor.float()  # NumPy has no bfloat16; values in [0, 1] as any float
    return _from_numpy(tensor.numpy())


_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


#: How an image meets the model's input size (``preprocessing["resize"]``): ``squash``
#: resizes it to the input size whatever its aspect (the default, and what configs
#: without the key mean); ``pad`` first pads it to a square by repeating its edge pixels
#: (:func:`pad_to_square`), so shapes keep their proportions.
RESIZE_MODES: tuple[str, ...] = ("squash", "pad")


def resize_mode(preprocessing: dict[str, Any]) -> str:
    """The preprocessing's resize mode, checked (``squash`` when not given)."""
    mode = preprocessing.get("resize", "squash")
    if mode not in RESIZE_MODES:
        raise InvalidInputError(
            f"preprocessing resize must be one of {', '.join(RESIZE_MODES)}, got {mode!r}"
        )
    return str(mode)


def pad_to_square(array: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``array`` (``H x W`` or ``H x W x C``) padded to a square of side ``max(H, W)`` by
    repeating its edge, centred; returns it and the ``(top, left)`` offset of the
    original inside it (an already square array is returned as it is)."""
    height, width = array.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    if side == height == width:
        return array, (0, 0)
    pad = [(top, side - height - top), (left, side - width - left)]
    pad += [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, mode="edge"), (top, left)


def to_model_input(image: np.ndarray, preprocessing: dict[str, Any]) -> Any:
    """RGB uint8 ``(H, W, 3)`` -> normalised float ``[3, h, w]`` tensor at the model's
    input size (``preprocessing``: ``size``, ``mean``, ``std``, ``interpolation`` and
    ``resize``, see :data:`RESIZE_MODES`), the same for inference and training."""
    import torch

    if resize_mode(preprocessing) == "pad":
        image = pad_to_square(image)[0]
    height, width = preprocessing["size"]
    if image.shape[:2] != (height, width):
        resample = _RESAMPLE[preprocessing.get("interpolation", "bicubic")]
        image = np.asarray(Image.fromarray(image).resize((width, height), resample))
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0)
    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32)
    return ((x - mean) / std).permute(2, 0, 1).contiguous()
