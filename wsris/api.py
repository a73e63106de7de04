"""``wsris.load`` and the :class:`Segmenter` users hold.

The Segmenter owns everything around the model: where the weights came from, device
and precision, image and text preprocessing, resizing maps back to the original image
size and thresholding. The per-method work is in the pipeline each method registers
(:mod:`wsris.registry`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ._thread_policy import thread_policy
from .blocks.maps import minmax, upsample_normalised
from .device import DeviceLike, autocast, resolve_device, resolve_dtype
from .domain import DomainJudgement, DomainWarning, judge
from .errors import (
    InvalidInputError,
    warn,
)
from .images import (
    DEFAULT_MAX_PIXELS,
    ImageInput,
    load_image,
    pad_to_square,
    resize_mode,
    to_model_input,
)
from .registry import MethodSpec, get_method, load_object
from .result import SegmentationResult
from .text import as_text_list
from .weights.folder import load_model_folder, save_model_folder
from .weights.manifest import ModelSpec, get_spec, load_manifest
from .weights.model_ref import (  # noqa: F401  (read_config: public here too)
    peek_config,
    read_config,
    resolve_model,
    text_tokenizer,
)
from .weights.sources import fetch, fetch_hf_repo

_WARNED: list[bool] = []


def _warn_thread_policy() -> None:
    """Once per process: the thread policy could not apply (torch came first)."""
    if _WARNED or thread_policy()["source"] != "too late":
        return
    _WARNED.append(True)
    warnings.warn(
        "torch was imported before wsris, so wsris's thread policy "
        "(OMP_WAIT_POLICY=PASSIVE) could not apply: on a busy CPU calls can be several "
        "times slower. Import wsris before torch, or set OMP_WAIT_POLICY in the "
        "environment (any value silences this warning).",
        stacklevel=_caller_stacklevel(),
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning name the first line outside wsris (the
    user's ``wsris.load(...)``, wherever inside the package it is raised)."""
    import sys

    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(2), 2  # 1 would be the caller of this function
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


@dataclass(eq=False)
class EncodedImage:
    """An image prepared once by :meth:`Segmenter.encode` for many ``segment`` calls.

    Holds the decoded RGB image, the model input and the method's image side (the
    chunk method's ViT tokens, attention and mask proposals; SaG's slots), computed for
    the options ``encode`` was given. A later call with other image-side options
    (e.g. another ``affinity_layer`` or ``seed``) computes and keeps those too. Only the
    Segmenter that made it accepts it.
    """

    image: np.ndarray = field(repr=False)  # RGB uint8 (H, W, 3), what load_image returned
    pixel_values: torch.Tensor = field(repr=False)  # (1, 3, h, w) on the model's device
    model: str
    method: str
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _owner: object = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the original image."""
        return int(self.image.shape[0]), int(self.image.shape[1])




class Segmenter:
    """A loaded model with its preprocessing. Create it with :func:`wsris.load`."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: dict[str, Any],
        name: str,
        device: DeviceLike = "auto",
        dtype: str | torch.dtype | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        spec: ModelSpec | None = None,
    ) -> None:
        self.config = config
        self.method: str = config["method"]
        self.name = name
        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_pixels = max_pixels
        self.model = model.to(self.device).eval()
        self.tokenizer = text_tokenizer(config)
        if self.device.type == "cpu":
            _warn_thread_policy()
        self.method_spec: MethodSpec = get_method(self.method)
        pipeline = load_object(self.method_spec.pipeline)
        self._localize = pipeline.localize
        self._encode = pipeline.encode
        self._token = object()  # identifies the EncodedImages this Segmenter made

    def __repr__(self) -> str:
        return f"Segmenter(name={self.name!r}, method={self.method!r}, device={self.device})"

    @property
    def threshold(self) -> float:
        """The default threshold on the min-max normalised heat map."""
        return float(self.config["inference"]["threshold"])

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``(H, W, 3)`` -> normalised ``(1, 3, h, w)`` at the model's size."""
        return to_model_input(image, self.config["preprocessing"])[None].to(self.device)

    def judge_domain(self, image: ImageInput) -> DomainJudgement | None:
        """Whether ``image`` looks like the pictures this model was trained on (its
        config's ``domain``); None when the config names no domain."""
        domain = self.config.get("domain")
        if domain is None:
            return None
        rgb = image.image if isinstance(image, EncodedImage) else load_image(image,
                                                                             self.max_pixels)
        return judge(rgb, domain)

    def _checked_domain(self, rgb: np.ndarray) -> DomainJudgement | None:
        """:meth:`judge_domain`, with one :class:`~wsris.domain.DomainWarning` when the
        image is outside the domain."""
        judgement = self.judge_domain(rgb)
        if judgement is not None and not judgement.in_domain:
            warn(f"this image does not look like what {self.name} was trained on "
                 f"({judgement.domain}; domain score {judgement.score:.2f}); the mask is "
                 "unreliable", DomainWarning, stacklevel=4)
        return judgement

    def _model_view(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The image the method sees and the ``(top, left)`` of ``rgb`` inside it: padded
        to a square when the preprocessing says ``resize: pad``, else ``rgb`` itself."""
        if resize_mode(self.config["preprocessing"]) == "pad":
            return pad_to_square(rgb)
        return rgb, (0, 0)

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        known = self.method_spec.options
        unknown = set(overrides) - known
        if unknown:
            raise InvalidInputError(
                f"unknown option(s) {sorted(unknown)} for method {self.method!r}; "
                f"known: {sorted(known)}"
            )
        options = {k: v for k, v in self.config["inference"].items() if k != "threshold"}
        options.update(overrides)
        return options

    def encode(self, image: ImageInput, **options: Any) -> EncodedImage:
        """Decode and encode ``image`` once, for any number of later ``segment`` calls.

        ``seg.segment(seg.encode(image), text)`` gives the same result as
        ``seg.segment(image, text)``; the image encoder (and, for chunk, the mask
        proposals) run here and not again. ``options`` are the method options the
        image side depends on (as for ``segment``); the model's defaults otherwise.
        """
        rgb = load_image(image, self.max_pixels)
        opts = self._options(options)
        view, _ = self._model_view(rgb)
        pixels = self.preprocess(view)
        encoded = EncodedImage(
            image=rgb, pixel_values=pixels, model=self.name, method=self.method,
            _owner=self._token,
        )
        encoded.cache["domain"] = self._checked_domain(rgb)
        with autocast(self.device, self.dtype):
            self._encode(self.model, pixels, view, opts, encoded.cache)
        return encoded

    def segment(
        self,
        image: ImageInput | EncodedImage,
        text: str | Sequence[str],
        *,
        threshold: float | None = None,
        **options: Any,
    ) -> SegmentationResult | list[SegmentationResult]:
        """Segment what ``text`` refers to in ``image``.

        ``image`` is anything :func:`wsris.images.load_image` reads, or an
        :class:`EncodedImage` from :meth:`encode` (the image side is then reused).
        ``text`` may be one string (returns one result) or a list (returns a list, one
        per text, with the image encoded once). ``threshold`` overrides the model's
        default on the [0, 1] heat map; ``options`` select method variants, e.g.
        ``stages=("gradcam", "affinity")`` for chunk or ``combine="max"`` for sag.
        """
        single = isinstance(text, str)
        texts = as_text_list(text)
        thr = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= thr <= 1.0:
            raise InvalidInputError(f"threshold must lie in [0, 1], got {thr}")
        if isinstance(image, EncodedImage):
            if image._owner is not self._token:
                raise InvalidInputError(
                    f"this EncodedImage was made by another Segmenter ({image.model!r}); "
                    "encode the image with the Segmenter that segments it"
                )
            rgb, pixels, cache = image.image, image.pixel_values, image.cache
            judgement = cache.get("domain")  # warned about by encode already
        else:
            rgb = load_image(image, self.max_pixels)
            pixels, cache = None, None
            judgement = self._checked_domain(rgb)
        batch = self.tokenizer(texts).to(self.device)
        opts = self._options(options)
        view, offset = self._model_view(rgb)
        if pixels is None:
            pixels = self.preprocess(view)
        with autocast(self.device, self.dtype):
            outputs = self._localize(self.model, pixels, batch, view, opts, cache)
        results = [
            self._finish(rgb, t, out, thr, view.shape[:2], offset)
            for t, out in zip(texts, outputs, strict=True)
        ]
        if judgement is not None:
            for r in results:
                r.in_domain, r.domain_score = judgement.in_domain, judgement.score
        return results[0] if single else results

    def _finish(self, rgb: np.ndarray, text: str, out: Any, threshold: float,
                view_size: tuple[int, int], offset: tuple[int, int]) -> SegmentationResult:
        """The result at ``rgb``'s size: the method's maps, made at the size of the image
        it saw (``view_size``, ``rgb`` at ``offset`` inside it), cut back to ``rgb``."""
        height, width = rgb.shape[:2]
        (top, left), (view_h, view_w) = offset, view_size
        region = (slice(top, top + height), slice(left, left + width))
        heat = upsample_normalised(out.heatmap.detach().float().cpu(), (view_h, view_w))
        if (view_h, view_w) != (height, width):
            heat = minmax(heat[region])
        heatmap = heat.numpy().astype(np.float32)
        if out.mask is not None:
            mask = np.asarray(
                Image.fromarray(np.asarray(out.mask, dtype=np.uint8) * 255).resize(
                    (view_w, view_h), Image.NEAREST
                )
            )[region] > 127
        else:
            mask = heatmap >= threshold
        return SegmentationResult(
            text=text,
            mask=mask,
            heatmap=heatmap,
            threshold=threshold,
            model=self.name,
            method=self.method,
            score=out.score,
            stages=out.stages,
            image=rgb,
        )

    def save_pretrained(
        self,
        folder: str | Path,
        model_card: str | None = None,
        weights_dtype: str = "float32",
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md``
        (see :func:`wsris.weights.save_model_folder`; absolute paths of this machine in
        the card are cut).

        ``weights_dtype="float16"`` halves the file (what the bundled models use); loading
        casts the weights back to the model's float32.
        """
        config = {**self.config}
        config.setdefault("name", self.name)
        return save_model_folder(self.model, config, folder, self.spec, model_card,
                                 weights_dtype)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        name: str | None = None,
        device: DeviceLike = "auto",
        dtype: str | torch.dtype | None = None,
        spec: ModelSpec | None = None,
    ) -> Segmenter:
        """The model of a local folder; ``name`` defaults to the one ``config.json``
        records, else the folder's name. With a manifest ``spec``, the manifest's
        preprocessing and inference defaults win (see
        :func:`wsris.weights.load_model_folder`)."""
        folder = Path(folder)
        model, config, name = load_model_folder(
            folder, name or folder.name, spec=spec, name_from_config=name is None)
        return cls(model, config, name=name, device=device, dtype=dtype, spec=spec)


def load(
    name_or_path: str | Path,
    device: DeviceLike = "auto",
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> Segmenter:
    """Load a model by manifest name, local folder, or ``hf-hub:org/repo@revision``.

    A name without a slash that is an existing folder here loads that folder (see
    :func:`resolve_model`).

    ``device="auto"`` takes CUDA when available; ``dtype`` is float32 unless
    ``"bfloat16"``/``"float16"`` is asked for on CUDA. ``revision``, ``cache_dir`` and
    ``local_files_only`` are passed to huggingface_hub (``local_files_only=None`` follows
    ``HF_HUB_OFFLINE``).
    """
    kind, target = resolve_model(name_or_path)
    if kind == "folder":
        folder = Path(target)
        return Segmenter.from_folder(folder, device=device, dtype=dtype)
    if kind == "hf":
        folder = fetch_hf_repo(
            target, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        return Segmenter.from_folder(folder, target, device, dtype)
    spec = get_spec(target, load_manifest())
    folder = fetch(spec, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    return Segmenter.from_folder(folder, spec.name, device, dtype, spec=spec)

