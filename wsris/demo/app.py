"""What the demo page asks for, without HTTP: the models on offer, the examples, and one
segmentation request (an image, one or more phrases, a model) answered with an overlay,
a heat map and a mask per phrase.

An image is encoded once per model (:meth:`wsris.api.Segmenter.encode`) and kept in a
small cache keyed by its bytes, so more phrases on the same image, in one request or in
later ones, cost no further encoding.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InvalidInputError
from .examples import example_image, examples

#: Largest uploaded image accepted (bytes of the file).
MAX_UPLOAD_BYTES = 20_000_000
#: Most phrases in one request.
MAX_PHRASES = 12
#: Encoded images kept (per model and image).
CACHED_IMAGES = 16


def available_models() -> list[str]:
    """Models that work here without a download and have trained weights: bundled or
    already cached; the default model first."""
    from ..weights.manifest import default_model, load_manifest
    from ..weights.sources import cached_status

    manifest = load_manifest()
    default = default_model(manifest)[0]
    ready = [name for name, spec in sorted(manifest.items())
             if not spec.random_init and cached_status(spec) in ("bundled", "cached")]
    return sorted(ready, key=lambda name: name != default)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def decode_upload(data_url: str) -> tuple[str, np.ndarray]:
    """``(key, rgb)`` of an uploaded image sent as a data URL (or bare base64)."""
    from ..images import load_image

    payload = data_url.split(",", 1)[1] if data_url.startswith("data:") else data_url
    if len(payload) > MAX_UPLOAD_BYTES * 4 // 3 + 4:
        raise InvalidInputError(f"the image is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB")
    try:
        raw = base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise InvalidInputError("the uploaded image is not valid base64") from exc
    try:
        pil = Image.open(io.BytesIO(raw))
    except Exception as exc:  # PIL raises several types for unreadable files
        raise InvalidInputError(f"cannot read the uploaded file as an image: {exc}") from exc
    return "upload:" + hashlib.sha256(raw).hexdigest(), load_image(pil)


class DemoApp:
    """The demo's state: loaded models (loaded on first use), encoded images, counters."""

    def __init__(self, models: list[str] | None = None, device: str = "auto") -> None:
        self.models = list(models) if models is not None else available_models()
        if not self.models:
            raise InvalidInputError("no model with trained weights is available here "
                                    "(see `wsris models`)")
        self.device = device
        self.encodings = 0  # images encoded so far (each model and image once)
        self._segmenters: dict[str, Any] = {}
        self._encoded: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()  # one model call at a time

    def info(self) -> dict[str, Any]:
        """The models (default first) and the examples with their phrases."""
        return {
            "models": self.models,
            "examples": [{"id": e.id, "phrases": list(e.phrases), "objects": list(e.objects)}
                         for e in examples()],
            "max_phrases": MAX_PHRASES,
        }

    def segmenter(self, model: str) -> Any:
        if model not in self.models:
            raise InvalidInputError(f"unknown model {model!r}; this demo offers "
                                    f"{', '.join(self.models)}")
        if model not in self._segmenters:
            from ..api import load

            self._segmenters[model] = load(model, device=self.device)
        return self._segmenters[model]

    def segment(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one request: ``{"model", "phrases": [...], "example": id}`` or with
        ``"image"`` (a data URL) instead of ``"example"``."""
        phrases = request.get("phrases")
        if isinstance(phrases, str):
            phrases = [phrases]
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise InvalidInputError("phrases must be a list of strings")
        phrases = [p.strip() for p in phrases if p.strip()]
        if not phrases:
            raise InvalidInputError("type at least one phrase")
        if len(phrases) > MAX_PHRASES:
            raise InvalidInputError(f"at most {MAX_PHRASES} phrases at a time")
        model = request.get("model") or self.models[0]
        if request.get("example"):
            try:
                rgb = example_image(str(request["example"]))
            except KeyError:
                raise InvalidInputError(f"unknown example {request['example']!r}") from None
            key = "example:" + str(request["example"])
        elif isinstance(request.get("image"), str):
            key, rgb = decode_upload(request["image"])
        else:
            raise InvalidInputError("pick an example or upload an image")
        with self._lock:
            seg = self.segmenter(model)
            encoded, fresh = self._encode(seg, model, key, rgb)
            results = seg.segment(encoded, phrases)
        return {
            "model": model, "encoded_now": fresh, "encodings": self.encodings,
            "results": [_describe(r) for r in results],
        }

    def _encode(self, seg: Any, model: str, key: str, rgb: np.ndarray) -> tuple[Any, bool]:
        cache_key = (model, key)
        if cache_key in self._encoded:
            self._encoded.move_to_end(cache_key)
            return self._encoded[cache_key], False
        encoded = seg.encode(rgb)
        self.encodings += 1
        self._encoded[cache_key] = encoded
        while len(self._encoded) > CACHED_IMAGES:
            self._encoded.popitem(last=False)
        return encoded, True


def _describe(result: Any) -> dict[str, Any]:
    return {
        **result.to_dict(),
        "overlay": png_data_url(result.overlay()),
        "heatmap": png_data_url(result.heatmap_image()),
        "mask": png_data_url(result.mask_image()),
    }
