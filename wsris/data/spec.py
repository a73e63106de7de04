"""Dataset specs as the command line writes them.

* ``shapes:SPLIT`` - the Shapes-Ref benchmark (generated on the fly), e.g. ``shapes:val``;
  ``shapes:VARIANT:SPLIT`` for a named variant (``shapes:plus:val``); ``shapes+:SPLIT`` is
  short for the RefCOCO+-like ``plus`` variant.
* ``DATASET:SPLIT_BY:SPLIT@ROOT`` - a REFER-format dataset under ROOT, e.g.
  ``refcoco+:unc:val@/data/refer``, ``refcocog:umd:test@/data/refer``, or an export made
  by ``wsris data export-shapes DIR`` read back as ``shapes:unc:val@DIR``.
  ``DATASET:SPLIT@ROOT`` uses the dataset's usual split-by (unc; umd for refcocog).
* ``phrasecut:SPLIT@ROOT`` - VGPhraseCut (train, val, test, miniv) under ROOT, the folder
  holding ``refer_<split>.json`` and ``images/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from .base import ReferringDataset

__all__ = ["DataSpec", "parse_data_spec", "open_dataset"]


@dataclass(frozen=True)
class DataSpec:
    kind: str  # "shapes", "refer" or "phrasecut"
    dataset: str
    split: str
    split_by: str | None = None
    variant: str = "default"
    root: Path | None = None

    def __str__(self) -> str:
        if self.kind == "phrasecut":
            return f"phrasecut:{self.split}@{self.root}"
        if self.kind == "refer":
            return f"{self.dataset}:{self.split_by}:{self.split}@{self.root}"
        v = "" if self.variant == "default" else f"{self.variant}:"
        return f"shapes:{v}{self.split}"


def parse_data_spec(spec: str) -> DataSpec:
    """Parse a ``--data`` value (see the module docstring)."""
    text = spec.strip()
    if "@" in text:
        head, root = text.split("@", 1)
        parts = [p for p in head.split(":")]
        if len(parts) == 2:
            dataset, split = parts
            split_by = None
        elif len(parts) == 3:
            dataset, split_by, split = parts
        else:
            raise InvalidInputError(
                f"bad data spec {spec!r}: expected DATASET:SPLIT_BY:SPLIT@ROOT, "
                "e.g. refcoco+:unc:val@/data/refer"
            )
        if not dataset or not split or not root:
            raise InvalidInputError(f"bad data spec {spec!r}: empty dataset, split or root")
        if dataset == "phrasecut":
            if split_by is not None:
                raise InvalidInputError(f"bad data spec {spec!r}: expected phrasecut:SPLIT@ROOT")
            return DataSpec("phrasecut", dataset, split, root=Path(root).expanduser())
        from .refer import DEFAULT_SPLIT_BY

        return DataSpec("refer", dataset, split,
                        split_by or DEFAULT_SPLIT_BY.get(dataset, "unc"),
                        root=Path(root).expanduser())
    parts = text.split(":")
    if parts[0] in ("shapes", "shapes+") and len(parts) in (2, 3):
        variant = "plus" if parts[0] == "shapes+" else "default"
        if len(parts) == 3:
            if parts[0] == "shapes+":
                raise InvalidInputError(f"bad data spec {spec!r}: shapes+ takes no variant")
            variant = parts[1]
        return DataSpec("shapes", "shapes", parts[-1], variant=variant)
    raise InvalidInputError(
        f"bad data spec {spec!r}: expected shapes:SPLIT, shapes:VARIANT:SPLIT, or "
        "DATASET:SPLIT_BY:SPLIT@ROOT for a REFER-format dataset"
    )


def open_dataset(spec: str | DataSpec, *, seed: int = 0, length: int | None = None,
                 image_root: str | Path | None = None) -> ReferringDataset:
    """The evaluation dataset of a spec (one sample per expression).

    ``seed`` and ``length`` apply to Shapes-Ref only (the benchmark is seed 0 and the
    split's default length); ``image_root`` to REFER and PhraseCut datasets only.
    """
    s = parse_data_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "phrasecut":
        from .phrasecut import PhraseCutDataset

        return PhraseCutDataset(s.root, s.split, image_root=image_root)
    if s.kind == "refer":
        from .refer import ReferDataset

        return ReferDataset(s.root, s.dataset, s.split_by, s.split, image_root=image_root)
    from .shapes import ShapesRef

    return ShapesRef(s.split, variant=s.variant, seed=seed, length=length).referring()
