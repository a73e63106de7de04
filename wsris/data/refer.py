"""REFER-format datasets: RefCOCO, RefCOCO+ (unc), G-Ref (umd, google) and exports.

Layout (that of github.com/lichengunc/refer)::

    ROOT/<dataset>/refs(<split_by>).p    pickle: list of refs
    ROOT/<dataset>/instances.json        COCO-style images, annotations, categories
    IMAGES/<file_name>                   COCO train2014 images (or exported PNGs)

A ref is ``{ref_id, ann_id, image_id, split, sentences: [{sent_id, sent, raw, tokens}]}``;
every sentence of every ref of the split is one sample, in file order. Masks come from the
ref's annotation (polygons unioned, or RLE) at the image's original size.

The image folder is, unless given, the first that exists of ``ROOT/images/mscoco/images/
train2014`` (the refer repository's layout), ``ROOT/images/train2014``, ``ROOT/train2014``
and ``ROOT/images``.

Refs pickles are read with an unpickler that refuses every class or function, so a
tampered file cannot run code: REFER pickles hold only lists, dicts, strings and numbers.
"""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .base import RefSample, confined_path, read_rgb
from .masks import segmentation_to_mask

__all__ = ["ReferDataset", "load_refs", "DEFAULT_SPLIT_BY", "KNOWN_SPLITS"]

#: The split-by of each standard dataset when none is given.
DEFAULT_SPLIT_BY: dict[str, str] = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
#: Standard evaluation splits, for error messages.
KNOWN_SPLITS: dict[tuple[str, str], tuple[str, ...]] = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refcocog", "google"): ("train", "val"),
}


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a refs pickle")


def load_refs(path: str | Path) -> list[dict[str, Any]]:
    """Read a REFER refs pickle (Python 2 or 3) safely."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"refs file not found: {path}")
    data = path.read_bytes()
    refs: Any = None
    for encoding in ("utf-8", "latin1"):  # Python 2 byte strings: try UTF-8 first
        try:
            refs = _NoGlobalsUnpickler(io.BytesIO(data), encoding=encoding).load()
            break
        except UnicodeDecodeError:
            continue
        except Exception as exc:
            raise DatasetError(f"cannot read refs pickle {path}: {exc}") from exc
    if not isinstance(refs, list):
        raise DatasetError(f"{path} does not hold a list of refs")
    return refs


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any, what: str) -> int:
    """An id or size: an integer (not a bool, not a fraction)."""
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise DatasetError(f"{what} is {value!r:.60}, not an integer")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{what} is {value!r:.60}, not an integer") from exc
    if isinstance(value, float) and number != value:
        raise DatasetError(f"{what} is {value!r:.60}, not an integer")
    return number


def _check_instances(instances: Any, path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """``(images by id, annotations by id)`` of a COCO-style instances file, every
    structure checked; anything malformed is a :class:`DatasetError` naming the entry."""
    if not isinstance(instances, dict):
        raise DatasetError(f"{path} is not COCO-style: expected an object with images and "
                           "annotations")
    for key in ("images", "annotations"):
        if not isinstance(instances.get(key), list):
            raise DatasetError(f"{path} is not COCO-style: {key!r} must be a list")
    images: dict[int, dict] = {}
    for i, im in enumerate(instances["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(im, dict):
            raise DatasetError(f"{where} is not an object")
        missing = {"id", "file_name", "height", "width"} - set(im)
        if missing:
            raise DatasetError(f"{where} lacks {sorted(missing)}")
        entry = {**im, "id": _int(im["id"], f"{where}.id")}
        for key in ("height", "width"):
            entry[key] = _int(im[key], f"{where}.{key}")
            if entry[key] < 1:
                raise DatasetError(f"{where}.{key} is {entry[key]}; must be at least 1")
        if not isinstance(im["file_name"], (str, bytes)) or not _text(im["file_name"]):
            raise DatasetError(f"{where}.file_name is {im['file_name']!r:.60}, not a name")
        images[entry["id"]] = entry
    annotations: dict[int, dict] = {}
    for i, a in enumerate(instances["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(a, dict):
            raise DatasetError(f"{where} is not an object")
        missing = {"id", "image_id", "segmentation"} - set(a)
        if missing:
            raise DatasetError(f"{where} lacks {sorted(missing)}")
        entry = {**a, "id": _int(a["id"], f"{where}.id"),
                 "image_id": _int(a["image_id"], f"{where}.image_id")}
        if entry["image_id"] not in images:
            raise DatasetError(f"{where} names image {entry['image_id']} that {path} does "
                               "not have")
        if not isinstance(a["segmentation"], (dict, list, tuple)):
            raise DatasetError(f"{where}.segmentation is a {type(a['segmentation']).__name__}"
                               ", not polygons or RLE")
        annotations[entry["id"]] = entry
    return images, annotations


def _check_ref(ref: dict[str, Any], path: Path) -> dict[str, Any]:
    """A ref of the split with integer ids and a list of sentences that each have text."""
    where = f"{path}: ref {ref.get('ref_id', '?')!r:.40}"
    missing = {"ann_id", "image_id", "sentences"} - set(ref)
    if missing:
        raise DatasetError(f"{where} lacks {sorted(missing)}")
    checked = {**ref, "ann_id": _int(ref["ann_id"], f"{where}: ann_id"),
               "image_id": _int(ref["image_id"], f"{where}: image_id")}
    sentences = ref["sentences"]
    if not isinstance(sentences, (list, tuple)):
        raise DatasetError(f"{where}: sentences is {type(sentences).__name__}, not a list")
    for k, sent in enumerate(sentences):
        if not isinstance(sent, dict):
            raise DatasetError(f"{where}: sentence {k} is not a mapping")
        text = sent.get("sent", sent.get("raw"))
        if not isinstance(text, (str, bytes)):
            raise DatasetError(f"{where}: sentence {k} has no text ('sent' or 'raw')")
    return checked


class ReferDataset:
    """Every sentence of every ref of one split, as :class:`RefSample` objects.

    >>> ds = ReferDataset("/data/refer", "refcoco+", split="val")   # doctest: +SKIP
    >>> len(ds), ds[0].text                                         # doctest: +SKIP
    """

    def __init__(self, root: str | Path, dataset: str, split_by: str | None = None,
                 split: str = "val", image_root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser()
        self.dataset = dataset
        self.split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
        self.split = split
        data_dir = self.root / dataset
        if not self.root.is_dir():
            raise DatasetError(f"REFER root folder not found: {self.root}")
        if not data_dir.is_dir():
            raise DatasetError(f"dataset folder not found: {data_dir}")
        refs = load_refs(data_dir / f"refs({self.split_by}).p")
        inst_path = data_dir / "instances.json"
        if not inst_path.is_file():
            raise DatasetError(f"instances file not found: {inst_path}")
        try:
            instances = json.loads(inst_path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {inst_path}: {exc}") from exc
        self.images, self.annotations = _check_instances(instances, inst_path)
        self.anns_of_image: dict[int, list[int]] = {}
        for ann_id, a in self.annotations.items():
            self.anns_of_image.setdefault(a["image_id"], []).append(ann_id)

        self.image_root = self._find_image_root(image_root)
        refs_path = data_dir / f"refs({self.split_by}).p"
        for i, r in enumerate(refs):
            if not isinstance(r, dict):
                raise DatasetError(f"{refs_path}: ref {i} is a {type(r).__name__}, not a "
                                   "mapping")
        in_split = [r for r in refs if _text(r.get("split", "")) == split]
        if not in_split:
            available = sorted({_text(r.get("split", "")) for r in refs})
            raise DatasetError(
                f"no refs with split {split!r} in {refs_path}; "
                f"available: {', '.join(available)}"
            )
        # (ref, sentence) pairs in file order.
        self._items: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for ref in in_split:
            ref = _check_ref(ref, refs_path)
            if ref["ann_id"] not in self.annotations:
                raise DatasetError(f"ref {ref.get('ref_id')} names annotation {ref['ann_id']} "
                                   f"that {inst_path} does not have")
            if ref["image_id"] not in self.images:
                raise DatasetError(f"ref {ref.get('ref_id')} names image {ref['image_id']} "
                                   f"that {inst_path} does not have")
            for sent in ref["sentences"]:
                self._items.append((ref, sent))
        self._image_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._mask_cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def name(self) -> str:
        return f"{self.dataset}:{self.split_by}:{self.split}"

    def _find_image_root(self, image_root: str | Path | None) -> Path:
        if image_root is not None:
            p = Path(image_root).expanduser()
            if not p.is_dir():
                raise DatasetError(f"image folder not found: {p}")
            return p
        candidates = [
            self.root / "images" / "mscoco" / "images" / "train2014",
            self.root / "images" / "train2014",
            self.root / "train2014",
            self.root / "images",
        ]
        for c in candidates:
            if c.is_dir():
                return c
        raise DatasetError(
            "no image folder found; looked for "
            + ", ".join(str(c) for c in candidates)
            + " (pass image_root / --images)"
        )

    def __len__(self) -> int:
        return len(self._items)

    def image_key(self, index: int) -> Hashable:
        return int(self._items[index][0]["image_id"])

    def image_path(self, image_id: int) -> Path:
        """The image file, confined to the image folder (a ``file_name`` that climbs out
        of it is a :class:`~wsris.errors.DatasetError`)."""
        return confined_path(self.image_root, self.images[image_id]["file_name"],
                             f"image {image_id}")

    def load_image(self, image_id: int) -> np.ndarray:
        """The RGB image (HxWx3 uint8) of ``image_id``, checked against instances.json."""
        if image_id in self._image_cache:
            return self._image_cache[image_id]
        path = self.image_path(image_id)
        rgb = read_rgb(path)
        info = self.images[image_id]
        h, w = int(info["height"]), int(info["width"])
        if rgb.shape[:2] != (h, w):
            raise DatasetError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]} but instances.json "
                               f"says {w}x{h}")
        self._image_cache[image_id] = rgb
        while len(self._image_cache) > 2:
            self._image_cache.popitem(last=False)
        return rgb

    def annotation_mask(self, ann_id: int) -> np.ndarray:
        """The HxW bool mask of one annotation at its image's original size."""
        if ann_id in self._mask_cache:
            return self._mask_cache[ann_id]
        ann = self.annotations[ann_id]
        info = self.images[int(ann["image_id"])]
        try:
            mask = segmentation_to_mask(ann["segmentation"], int(info["height"]),
                                        int(info["width"]))
        except DatasetError as exc:
            raise DatasetError(f"annotation {ann_id}: {exc}") from exc
        self._mask_cache[ann_id] = mask
        while len(self._mask_cache) > 64:
            self._mask_cache.popitem(last=False)
        return mask

    def __getitem__(self, index: int) -> RefSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        ref, sent = self._items[index]
        image_id = int(ref["image_id"])
        text = _text(sent.get("sent", sent.get("raw", "")))
        return RefSample(
            sample_id=str(sent.get("sent_id", index)),
            image_id=image_id,
            image=self.load_image(image_id),
            text=text,
            mask=self.annotation_mask(int(ref["ann_id"])),
            object_masks=[self.annotation_mask(a) for a in self.anns_of_image[image_id]],
            kind=_text(sent["kind"]) if "kind" in sent else None,
            ref_id=ref.get("ref_id"),
        )

    def sample_ref(self, index: int) -> dict[str, Any]:
        """Who sample ``index`` is, without reading its image or mask: dataset, ref id,
        sentence id and image id (for error messages and skip lists)."""
        ref, sent = self._items[index]
        return {"dataset": self.name, "ref_id": ref.get("ref_id"),
                "sent_id": sent.get("sent_id", index), "image_id": int(ref["image_id"])}

    def missing_images(self) -> list[Path]:
        """Image files of this split that do not exist (checked once, up front)."""
        ids = sorted({int(ref["image_id"]) for ref, _ in self._items})
        missing = []
        for i in ids:
            try:
                path = self.image_path(i)
            except DatasetError:
                continue  # a name outside the folder fails its samples when they are read
            if not path.is_file():
                missing.append(path)
        return missing

    def __repr__(self) -> str:
        return f"ReferDataset({str(self.root)!r}, {self.name!r}, samples={len(self)})"
