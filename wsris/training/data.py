"""Training batches: image-text pairs from a data spec, preprocessed and tokenized.

Only images and expressions are used for the weakly supervised losses; target masks are
carried along for the optional box / semi supervision of the chunk method and for
monitoring, never for the weak losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import torch
from PIL import Image

from ..errors import InvalidInputError
from ..images import to_model_input
from ..text import TextBatch, Tokenizer


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _cached_shapes(split: str, folder: Path, params: dict[str, Any]):
    """``shapes:SPLIT?cache=DIR&length=N[&variant=V&seed=S]``: the cache in DIR, written
    there first (on every core) when DIR does not exist yet; an existing cache must hold
    exactly the scenes the spec names."""
    from ..data.shapes_cache import CachedShapes, write_shapes_cache

    unknown = sorted(set(params) - {"variant", "seed", "length"})
    if unknown or "length" not in params:
        raise InvalidInputError(
            f"a cached shapes spec takes length (required), variant and seed; got {sorted(params)}"
        )
    want = {"split": split, "variant": str(params.get("variant", "default")),
            "seed": int(params.get("seed", 0)), "n": int(params["length"])}
    if not (folder / "cache.json").is_file():
        import os

        from tqdm.auto import tqdm

        with tqdm(total=want["n"], unit="scene", desc=f"caching {folder.name}") as bar:
            write_shapes_cache(folder, split, want["n"], variant=want["variant"],
                               seed=want["seed"], workers=os.cpu_count() or 1,
                               progress=bar.update)
    data = CachedShapes(folder)
    have = {"split": data.split, "variant": data.variant, "seed": data.seed, "n": len(data)}
    if have != want:
        raise InvalidInputError(f"the cache in {folder} holds {have}, the spec asks for {want}")
    return data


def referring_dataset(spec: str):
    """``shapes:SPLIT[?variant=V&seed=S&length=N&image_size=P]``, with ``&cache=DIR`` the
    same scenes pre-rendered once into DIR (see :func:`_cached_shapes`), ``cache:DIR`` (a
    cache written by ``wsris data cache``) or a spec the evaluation understands
    (``refcoco+:unc:train@/path/to/refer``)."""
    if spec.startswith("cache:"):
        from ..data.shapes_cache import CachedShapes

        return CachedShapes(Path(spec[len("cache:"):]).expanduser()).referring()
    head, _, query = spec.partition("?")
    params = {k: _coerce(v) for k, v in parse_qsl(query)}
    if head.startswith("shapes:"):
        from ..data.shapes import ShapesRef

        split = head.split(":", 1)[1]
        cache = params.pop("cache", None)
        if cache is not None:
            return _cached_shapes(split, Path(str(cache)).expanduser(), params).referring()
        return ShapesRef(split, **params).referring()
    if query:
        raise InvalidInputError(f"{spec!r}: options after '?' are only for shapes: data")
    from ..evaluation import load_dataset

    return load_dataset(spec)


@dataclass
class PairBatch:
    pixel_values: torch.Tensor  # [B_img, 3, H, W], one per distinct image
    text: TextBatch  # [B_txt, L]
    image_index: torch.Tensor  # [B_txt]: which row of pixel_values each text describes
    masks: torch.Tensor  # [B_txt, H, W] bool target masks at the model's input size
    kinds: list[str | None]
    sample_ids: list[str]

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(
            self.pixel_values.to(device),
            self.text.to(device),
            self.image_index.to(device),
            self.masks.to(device),
            self.kinds,
            self.sample_ids,
        )


class PairCollator:
    """Groups the texts of one image onto one image row (so contrastive losses never
    treat an image's own second expression as a negative)."""

    def __init__(self, tokenizer: Tokenizer, preprocessing: dict[str, Any]) -> None:
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing

    def __call__(self, samples: list) -> PairBatch:
        height, width = self.preprocessing["size"]
        rows: dict[Any, int] = {}
        pixels, index, masks = [], [], []
        for s in samples:
            if s.image_id not in rows:
                rows[s.image_id] = len(pixels)
                pixels.append(to_model_input(s.image, self.preprocessing))
            index.append(rows[s.image_id])
            m = Image.fromarray(s.mask.astype(np.uint8) * 255).resize((width, height))
            masks.append(torch.from_numpy(np.asarray(m) > 127))
        return PairBatch(
            torch.stack(pixels),
            self.tokenizer([s.text for s in samples]),
            torch.tensor(index, dtype=torch.long),
            torch.stack(masks),
            [s.kind for s in samples],
            [str(s.sample_id) for s in samples],
        )
