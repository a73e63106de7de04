"""Frozen-stem features of a cached Shapes-Ref set, computed once and read back per step.

A recipe whose image stem is frozen (``stem: efficientnet_lite0`` with ``stem_frozen``)
computes the same stem features for a training image at every step it appears in. When
the training data is a Shapes-Ref cache (``shapes:train?cache=DIR&...``), those features
are computed once for every scene, stored beside the cache and read back by the batches;
only the trainable projection and everything after it run in the step. The file is keyed
by a fingerprint of the stem's weights and the preprocessing, so other weights or another
normalisation never read stale features; a test checks that the losses and gradients of
a step are the same either way.

Files in the cache folder, per fingerprint ``F`` (the first 16 hex digits):

- ``stem-F.f32``: memory-mapped ``float32 [n, C, h, w]``, scene ``i`` at row ``i``;
- ``stem-F.json``: fingerprint, shape and version, written last (a folder without it holds
  an interrupted write, which is redone).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DatasetError
from ..images import to_model_input

__all__ = ["StemFeatures", "cached_scenes", "stem_features_for"]

STEM_CACHE_VERSION = 1
_BATCH = 64


def stem_fingerprint(backbone: nn.Module, preprocessing: dict[str, Any]) -> str:
    """sha256 over the stem's tensors (names, shapes, bytes) and the preprocessing."""
    h = hashlib.sha256()
    for name, value in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    keys = ("mean", "std", "size", "interpolation")
    described = {k: preprocessing.get(k) for k in keys}
    if "resize" in preprocessing:  # only when given, so older caches keep their keys
        described["resize"] = preprocessing["resize"]
    h.update(json.dumps(described, default=list).encode())
    h.update(str(STEM_CACHE_VERSION).encode())
    return h.hexdigest()


class StemFeatures:
    """Read-only stem features of one cache, indexed by scene."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path = path
        self.shape = shape
        self._array = np.memmap(path, np.float32, "r", shape=shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, scenes: list[int]) -> torch.Tensor:
        """``float32 [len(scenes), C, h, w]``."""
        return torch.from_numpy(np.stack([self._array[i] for i in scenes]))


def cached_scenes(dataset: Any) -> Any | None:
    """The :class:`~wsris.data.shapes_cache.CachedShapes` behind a referring dataset, or
    None when its scenes are not read from a cache (then nothing is stored)."""
    from ..data.shapes_cache import CachedShapes

    scenes = getattr(dataset, "scenes", None)
    return scenes if isinstance(scenes, CachedShapes) else None


def _compute(scenes: Any, backbone: nn.Module, preprocessing: dict[str, Any], path: Path,
             progress: bool) -> tuple[int, ...]:
    was_training = backbone.training
    backbone.eval()  # batch norm must neither use nor update batch statistics here
    try:
        return _fill(scenes, backbone, preprocessing, path, progress)
    finally:
        backbone.train(was_training)


def _fill(scenes: Any, backbone: nn.Module, preprocessing: dict[str, Any], path: Path,
          progress: bool) -> tuple[int, ...]:
    from ..progress import tqdm

    n = len(scenes)
    device = next(backbone.parameters()).device  # a GPU run computes them on its GPU
    with torch.no_grad():
        probe = backbone(to_model_input(scenes.image(0), preprocessing)[None].to(device))
    shape = (n, *probe.shape[1:])
    out = np.memmap(path, np.float32, "w+", shape=shape)
    with tqdm(total=n, unit="scene", desc="stem features", disable=not progress) as bar:
        for start in range(0, n, _BATCH):
            stop = min(start + _BATCH, n)
            x = torch.stack([to_model_input(scenes.image(i), preprocessing)
                             for i in range(start, stop)])
            with torch.no_grad():
                x = x.to(device).contiguous(memory_format=torch.channels_last)
                out[start:stop] = backbone(x).float().cpu().numpy()
            bar.update(stop - start)
    out.flush()
    del out
    return shape


def stem_features_for(dataset: Any, backbone: nn.Module, preprocessing: dict[str, Any],
                      progress: bool = True) -> StemFeatures | None:
    """The stored stem features of ``dataset``'s scenes, computed first when missing;
    None when the dataset is not read from a Shapes-Ref cache. ``backbone`` is the frozen
    stem; it runs in eval mode here, as it does in training."""
    scenes = cached_scenes(dataset)
    if scenes is None:
        return None
    tag = stem_fingerprint(backbone, preprocessing)
    path = scenes.folder / f"stem-{tag[:16]}.f32"
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        tmp = path.with_suffix(f".f32.tmp{os.getpid()}")
        shape = _compute(scenes, backbone, preprocessing, tmp, progress)
        os.replace(tmp, path)
        meta = {"version": STEM_CACHE_VERSION, "fingerprint": tag, "shape": list(shape)}
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    shape = tuple(int(v) for v in meta["shape"])
    if meta.get("fingerprint") != tag or shape[0] != len(scenes):
        raise DatasetError(f"{meta_path} does not belong to this stem and cache; delete it")
    expected = int(np.prod(shape)) * 4
    if not path.is_file() or path.stat().st_size != expected:
        raise DatasetError(f"{path} is truncated or missing; delete {meta_path} to redo it")
    return StemFeatures(path, shape)
