"""A pre-generated Shapes-Ref set on disk, so training pays nothing per step for scenes.

``write_shapes_cache`` renders scenes ``0..n-1`` of one split/variant/seed once and stores
them in a folder; :class:`CachedShapes` reads them back as the very same
:class:`~wsris.data.shapes.ShapesSample` objects the generator makes (a test checks this).

Layout of a cache folder:

- ``images.u8``: memory-mapped ``uint8 [n, H, W, 3]``;
- ``labels.u8``: memory-mapped ``uint8 [n, H, W]``, 0 for background and ``k + 1`` for
  object ``k`` (Shapes-Ref masks are disjoint, so one label map holds them all);
- ``scenes.json``: per scene, the objects' attributes (without masks) and expressions;
- ``cache.json``: split, variant, seed, size, the generator configuration and a version,
  written last, so a folder without it is an interrupted write and is refused.

A variant whose scenes differ in size (``canvas_sizes``) is stored in parts instead, one
per worker task: ``part-K.images.u8`` and ``part-K.labels.u8`` hold that task's scenes
one after the other, flat, and each scene's record in ``scenes.json`` gives its part,
offset (in pixels) and ``[height, width]`` (cache version 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, InvalidInputError
from .shapes import (
    Expression,
    ShapeObject,
    ShapesConfig,
    ShapesRef,
    ShapesSample,
    generate_sample,
    variant_config,
)

__all__ = ["CachedShapes", "write_shapes_cache"]

CACHE_VERSION = 1  # one fixed image size, whole-set memory maps
PARTS_VERSION = 2  # scenes of varying sizes, stored in parts
_OBJECT_FIELDS = ("shape", "colour", "size", "center", "radius", "bbox", "rgb")
_CHUNK = 256  # scenes per worker task


def _scene_record(sample: ShapesSample) -> dict[str, Any]:
    return {
        "objects": [{k: getattr(o, k) for k in _OBJECT_FIELDS} for o in sample.objects],
        "expressions": [dataclasses.asdict(e) for e in sample.expressions],
    }


def _render_chunk(args: tuple) -> list[dict[str, Any]]:
    """Render scenes ``start..stop`` straight into the memory maps (one worker's task)."""
    folder, split, variant, seed, cfg, start, stop, n = args
    if cfg.canvas_sizes:
        return _render_part(args)
    size = cfg.image_size
    images = np.memmap(folder / "images.u8", np.uint8, "r+", shape=(n, size, size, 3))
    labels = np.memmap(folder / "labels.u8", np.uint8, "r+", shape=(n, size, size))
    records = []
    for i in range(start, stop):
        sample = generate_sample(split, i, seed, cfg, variant)
        images[i] = sample.image
        labels[i] = _label_map(sample)
        records.append(_scene_record(sample))
    images.flush()
    labels.flush()
    return records


def _label_map(sample: ShapesSample) -> np.ndarray:
    label = np.zeros(sample.image.shape[:2], np.uint8)
    for k, o in enumerate(sample.objects):
        label[o.mask] = k + 1
    return label


def _render_part(args: tuple) -> list[dict[str, Any]]:
    """Scenes ``start..stop`` of varying sizes, appended to one part's flat files."""
    folder, split, variant, seed, cfg, start, stop, _ = args
    part = start // _CHUNK
    records = []
    offset = 0
    with open(folder / f"part-{part}.images.u8", "wb") as img_f, \
            open(folder / f"part-{part}.labels.u8", "wb") as lab_f:
        for i in range(start, stop):
            sample = generate_sample(split, i, seed, cfg, variant)
            height, width = sample.image.shape[:2]
            img_f.write(np.ascontiguousarray(sample.image).tobytes())
            lab_f.write(_label_map(sample).tobytes())
            records.append({**_scene_record(sample), "part": part, "offset": offset,
                            "canvas": [height, width]})
            offset += height * width
    return records


def write_shapes_cache(
    directory: str | Path,
    split: str = "train",
    n: int = 50_000,
    *,
    variant: str = "default",
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> Path:
    """Render scenes ``0..n-1`` of ``shapes:SPLIT`` (``variant``, ``seed``) into
    ``directory``; returns it. ``workers`` processes render in parallel; the result does
    not depend on their number."""
    folder = Path(directory)
    if n < 1:
        raise InvalidInputError(f"n must be at least 1, got {n}")
    cfg = variant_config(variant)
    if cfg.max_objects > 255:  # labels are uint8
        raise InvalidInputError("at most 255 objects per scene can be cached")
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise InvalidInputError(f"{folder} is not empty; pass overwrite=True to replace it")
        if not (folder / "cache.json").is_file() and not (folder / "images.u8").is_file() \
                and not (folder / "part-0.images.u8").is_file():
            raise InvalidInputError(f"{folder} is not a Shapes-Ref cache; refusing to replace it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = cfg.image_size
    if not cfg.canvas_sizes:
        np.memmap(folder / "images.u8", np.uint8, "w+", shape=(n, size, size, 3)).flush()
        np.memmap(folder / "labels.u8", np.uint8, "w+", shape=(n, size, size)).flush()
    tasks = [(folder, split, variant, seed, cfg, s, min(n, s + _CHUNK), n)
             for s in range(0, n, _CHUNK)]
    records: list[dict[str, Any]] = []
    if workers <= 1:
        results: Iterator[list[dict[str, Any]]] = map(_render_chunk, tasks)
        for chunk in results:
            records += chunk
            if progress:
                progress(len(chunk))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for chunk in pool.map(_render_chunk, tasks):
                records += chunk
                if progress:
                    progress(len(chunk))
    (folder / "scenes.json").write_text(json.dumps(records), encoding="utf-8")
    meta = {
        "version": PARTS_VERSION if cfg.canvas_sizes else CACHE_VERSION,
        "split": split, "variant": variant, "seed": seed, "n": n,
        "image_size": size, "config": dataclasses.asdict(cfg),
    }
    tmp = folder / "cache.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, folder / "cache.json")
    return folder


def _tupled(value: Any) -> Any:
    """JSON lists back to the tuples of a frozen :class:`ShapesConfig`."""
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


class CachedShapes(ShapesRef):
    """A Shapes-Ref cache folder as a dataset of scenes: a
    :class:`~wsris.data.shapes.ShapesRef` (``len``, ``[i]`` -> ``ShapesSample``,
    ``referring()``) whose scenes are read from memory maps instead of rendered."""

    def __init__(self, directory: str | Path) -> None:
        # not ShapesRef.__init__: split, variant, seed and size come from cache.json
        folder = Path(directory)
        meta_path = folder / "cache.json"
        if not meta_path.is_file():
            raise DatasetError(
                f"{folder} is not a complete Shapes-Ref cache (no cache.json); write it with "
                "`wsris data cache`"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("version") not in (CACHE_VERSION, PARTS_VERSION):
            raise DatasetError(f"{folder}: cache version {meta.get('version')} is not "
                               f"{CACHE_VERSION} or {PARTS_VERSION}; write it again")
        self.folder = folder
        self.split: str = meta["split"]
        self.variant: str = meta["variant"]
        self.seed: int = int(meta["seed"])
        self.length = int(meta["n"])
        self.config = ShapesConfig(**{k: _tupled(v) for k, v in meta["config"].items()})
        size = int(meta["image_size"])
        self._scenes = json.loads((folder / "scenes.json").read_text(encoding="utf-8"))
        if len(self._scenes) != self.length:
            raise DatasetError(f"{folder}: {len(self._scenes)} scene records for "
                               f"{self.length} images")
        self._parts: dict[int, tuple[np.memmap, np.memmap]] = {}
        try:
            if meta["version"] == PARTS_VERSION:
                for part in sorted({int(r["part"]) for r in self._scenes}):
                    self._parts[part] = (
                        np.memmap(folder / f"part-{part}.images.u8", np.uint8, "r"),
                        np.memmap(folder / f"part-{part}.labels.u8", np.uint8, "r"),
                    )
                return
            self._images = np.memmap(folder / "images.u8", np.uint8, "r",
                                     shape=(self.length, size, size, 3))
            self._labels = np.memmap(folder / "labels.u8", np.uint8, "r",
                                     shape=(self.length, size, size))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{folder}: cache arrays unreadable or truncated: {exc}") from exc

    def _arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene ``index``'s image and label map, as views of the memory maps."""
        if not self._parts:
            return self._images[index], self._labels[index]
        record = self._scenes[index]
        images, labels = self._parts[int(record["part"])]
        height, width = record["canvas"]
        start, stop = int(record["offset"]), int(record["offset"]) + height * width
        if stop > labels.shape[0] or 3 * stop > images.shape[0]:
            raise DatasetError(f"{self.folder}: part {record['part']} is truncated")
        return (images[3 * start:3 * stop].reshape(height, width, 3),
                labels[start:stop].reshape(height, width))

    def image(self, index: int) -> np.ndarray:
        """Scene ``index``'s image alone, ``uint8 [H, W, 3]`` (no masks decoded)."""
        return np.array(self._arrays(index)[0])

    def _scene(self, index: int) -> ShapesSample:
        record = self._scenes[index]
        image, label = self._arrays(index)
        label = np.asarray(label)
        objects = [
            ShapeObject(
                shape=o["shape"], colour=o["colour"], size=o["size"],
                center=tuple(o["center"]), radius=float(o["radius"]), bbox=tuple(o["bbox"]),
                mask=label == k + 1, rgb=tuple(o["rgb"]),
            )
            for k, o in enumerate(record["objects"])
        ]
        return ShapesSample(
            image=np.array(image),
            objects=objects,
            expressions=[Expression(**e) for e in record["expressions"]],
            split=self.split, index=index, seed=self.seed, variant=self.variant,
        )

    def __repr__(self) -> str:
        return (f"CachedShapes({str(self.folder)!r}, split={self.split!r}, "
                f"variant={self.variant!r}, seed={self.seed}, n={self.length})")


def open_cached_shapes(split: str, folder: Path, params: dict[str, Any]) -> CachedShapes:
    """``shapes:SPLIT?cache=DIR&length=N[&variant=V&seed=S]``: the cache in DIR, written
    there first (on every core) when DIR does not exist yet; an existing cache must hold
    exactly the scenes the spec names."""
    unknown = sorted(set(params) - {"variant", "seed", "length"})
    if unknown or "length" not in params:
        raise InvalidInputError(
            f"a cached shapes spec takes length (required), variant and seed; got {sorted(params)}"
        )
    want = {"split": split, "variant": str(params.get("variant", "default")),
            "seed": int(params.get("seed", 0)), "n": int(params["length"])}
    if not (folder / "cache.json").is_file():
        import os

        from ..progress import tqdm

        with tqdm(total=want["n"], unit="scene", desc=f"caching {folder.name}") as bar:
            write_shapes_cache(folder, split, want["n"], variant=want["variant"],
                               seed=want["seed"], workers=os.cpu_count() or 1,
                               progress=bar.update)
    data = CachedShapes(folder)
    have = {"split": data.split, "variant": data.variant, "seed": data.seed, "n": len(data)}
    if have != want:
        raise InvalidInputError(f"the cache in {folder} holds {have}, the spec asks for {want}")
    return data
