"""VGPhraseCut (Wu et al. 2020), the fourth dataset of the SaG paper.

Layout (that of the dataset's own downloader, ``data/VGPhraseCut_v0``)::

    ROOT/refer_<split>.json     list of tasks, split in train | val | test | miniv
    ROOT/images/<image_id>.jpg  Visual Genome images

A task is one phrase-region pair: ``task_id``, ``image_id``, ``phrase``, ``Polygons`` (one
list per referred instance, each a list of polygons, each a list of ``[x, y]`` points) and
``phrase_structure`` whose ``type`` (name, attribute, relation, verbose) becomes the
sample's ``kind``. The target mask is the union of every instance's polygons at the
image's original size; a phrase may refer to several instances.

PhraseCut annotates only the referred regions, so an image's ``object_masks`` (what the
random-object and all-objects baselines draw on) are the target regions of all its tasks.
Tasks are grouped by image (first appearance order), as the evaluation expects.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .base import RefSample, read_rgb
from .masks import polygons_to_mask

__all__ = ["PhraseCutDataset", "PHRASECUT_SPLITS"]

PHRASECUT_SPLITS = ("train", "val", "test", "miniv")


def _read_tasks(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"PhraseCut tasks file not found: {path}")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not isinstance(tasks, list):
        raise DatasetError(f"{path} does not hold a list of tasks")
    return [_check_task(task, f"{path}: task {i}") for i, task in enumerate(tasks)]


def _check_task(task: Any, where: str) -> dict[str, Any]:
    """One task with every structure checked: an integer image id, a phrase, Polygons a
    list (instances) of lists (polygons) of points, phrase_structure a mapping or absent."""
    if not isinstance(task, dict):
        raise DatasetError(f"{where} is a {type(task).__name__}, not an object")
    missing = {"task_id", "image_id", "phrase", "Polygons"} - set(task)
    if missing:
        raise DatasetError(f"{where} lacks {sorted(missing)}")
    image_id = task["image_id"]
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        try:
            image_id = int(str(image_id)) if isinstance(image_id, str) else None
        except ValueError:
            image_id = None
        if image_id is None:
            raise DatasetError(f"{where}: image_id {task['image_id']!r:.40} is not an integer")
    if image_id < 0:
        raise DatasetError(f"{where}: image_id {image_id} is negative")
    if not isinstance(task["phrase"], str):
        raise DatasetError(f"{where}: phrase is a {type(task['phrase']).__name__}, not text")
    if not isinstance(task["task_id"], (str, int)) or isinstance(task["task_id"], bool):
        raise DatasetError(f"{where}: task_id {task['task_id']!r:.40} is not a name")
    instances = task["Polygons"]
    if not isinstance(instances, list) or not all(
            isinstance(inst, list) and all(isinstance(poly, list) for poly in inst)
            for inst in instances):
        raise DatasetError(f"{where}: Polygons must be a list (instances) of lists "
                           "(polygons) of [x, y] points")
    structure = task.get("phrase_structure")
    if structure is not None and not isinstance(structure, dict):
        raise DatasetError(f"{where}: phrase_structure is not an object")
    if structure is not None and not isinstance(structure.get("type", ""), (str, type(None))):
        raise DatasetError(f"{where}: phrase_structure.type is not text")
    return {**task, "image_id": image_id}


class PhraseCutDataset:
    """Every task (phrase-region pair) of one PhraseCut split, as :class:`RefSample`."""

    def __init__(self, root: str | Path, split: str = "val",
                 image_root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"PhraseCut root folder not found: {self.root}")
        if split not in PHRASECUT_SPLITS:
            raise DatasetError(f"PhraseCut has no split {split!r}; known: {PHRASECUT_SPLITS}")
        self.split = split
        self.image_root = Path(image_root).expanduser() if image_root else self.root / "images"
        if not self.image_root.is_dir():
            raise DatasetError(f"PhraseCut image folder not found: {self.image_root}")
        tasks = _read_tasks(self.root / f"refer_{split}.json")
        by_image: dict[int, list[dict[str, Any]]] = {}
        for task in tasks:
            by_image.setdefault(int(task["image_id"]), []).append(task)
        self._tasks = [t for group in by_image.values() for t in group]
        self._tasks_of_image = by_image
        self._image_cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def name(self) -> str:
        return f"phrasecut:{self.split}"

    def __len__(self) -> int:
        return len(self._tasks)

    def image_key(self, index: int) -> Hashable:
        return int(self._tasks[index]["image_id"])

    def image_path(self, image_id: int) -> Path:
        return self.image_root / f"{image_id}.jpg"

    def missing_images(self) -> list[Path]:
        """Image files of this split that do not exist (checked once, up front)."""
        ids = sorted({int(task["image_id"]) for task in self._tasks})
        return [p for p in (self.image_path(i) for i in ids) if not p.is_file()]

    def load_image(self, image_id: int) -> np.ndarray:
        if image_id in self._image_cache:
            return self._image_cache[image_id]
        path = self.image_path(image_id)
        rgb = read_rgb(path)
        self._image_cache[image_id] = rgb
        while len(self._image_cache) > 2:
            self._image_cache.popitem(last=False)
        return rgb

    @staticmethod
    def task_mask(task: dict[str, Any], height: int, width: int) -> np.ndarray:
        """The union of all referred instances' polygons, HxW bool."""
        polygons = [poly for instance in task["Polygons"] for poly in instance]
        try:
            return polygons_to_mask(polygons, height, width)
        except DatasetError as exc:
            raise DatasetError(f"task {task['task_id']}: {exc}") from exc

    def __getitem__(self, index: int) -> RefSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        task = self._tasks[index]
        image_id = int(task["image_id"])
        image = self.load_image(image_id)
        h, w = image.shape[:2]
        structure = task.get("phrase_structure") or {}
        return RefSample(
            sample_id=str(task["task_id"]),
            image_id=image_id,
            image=image,
            text=str(task["phrase"]),
            mask=self.task_mask(task, h, w),
            object_masks=[self.task_mask(t, h, w) for t in self._tasks_of_image[image_id]],
            kind=structure.get("type"),
        )

    def __repr__(self) -> str:
        return f"PhraseCutDataset({str(self.root)!r}, {self.split!r}, samples={len(self)})"
