"""Dataset specs as the command line writes them.

* ``shapes:SPLIT`` - the Shapes-Ref benchmark (generated on the fly), e.g. ``shapes:val``
  or the held-out ``shapes:drawings``;
  ``shapes:VARIANT:SPLIT`` for a named variant (``shapes:plus:val``); ``shapes+:SPLIT`` is
  short for the RefCOCO+-like ``plus`` variant.
* ``DATASET:SPLIT_BY:SPLIT@ROOT`` - a REFER-format dataset under ROOT, e.g.
  ``refcoco+:unc:val@/data/refer``, ``refcocog:umd:test@/data/refer``, or an export made
  by ``wsris data export-shapes DIR`` read back as ``shapes:unc:val@DIR``.
  ``DATASET:SPLIT@ROOT`` uses the dataset's usual split-by (unc; umd for refcocog).
* ``phrasecut:SPLIT@ROOT`` - VGPhraseCut (train, val, test, miniv) under ROOT, the folder
  holding ``refer_<split>.json`` and ``images/``.
* ``cache:DIR`` - Shapes-Ref scenes pre-rendered by ``wsris data cache``.

A Shapes-Ref spec may end in options, ``?key=value&...``: ``variant``, ``seed``,
``length``, any :class:`~wsris.data.shapes.ShapesConfig` field (e.g. ``image_size``), and
``cache=DIR`` for the same scenes pre-rendered once into DIR (written on first use; an
existing cache must hold exactly the scenes the spec names). Training recipes and
``wsris eval --data`` read this one grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import InvalidInputError
from .base import ReferringDataset

__all__ = ["DataSpec", "parse_data_spec", "open_dataset"]


@dataclass(frozen=True)
class DataSpec:
    kind: str  # "shapes", "refer", "phrasecut" or "cache"
    dataset: str
    split: str
    split_by: str | None = None
    variant: str = "default"
    root: Path | None = None
    options: tuple[tuple[str, Any], ...] = ()  # shapes only: the ``?key=value`` options

    def __str__(self) -> str:
        if self.kind == "cache":
            return f"cache:{self.root}"
        if self.kind == "phrasecut":
            return f"phrasecut:{self.split}@{self.root}"
        if self.kind == "refer":
            return f"{self.dataset}:{self.split_by}:{self.split}@{self.root}"
        v = "" if self.variant == "default" else f"{self.variant}:"
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"shapes:{v}{self.split}{query}"


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _check_shapes_options(spec: str, options: dict[str, Any]) -> None:
    """Every ``?key=value`` of a Shapes-Ref spec is known and of the right type: seed and
    length integers (length at least 1), cache a folder, a ShapesConfig field a value of
    its type (tuple fields cannot be given here)."""
    import dataclasses
    import math

    from .shapes_grammar import ShapesConfig

    scalar = {f.name: type(f.default) for f in dataclasses.fields(ShapesConfig)
              if isinstance(f.default, (bool, int, float, str))}
    kinds: dict[str, type] = {"seed": int, "length": int, "cache": str, **scalar}
    for key, value in options.items():
        if key not in kinds:
            raise InvalidInputError(
                f"bad data spec {spec!r}: unknown option {key!r}; known: "
                f"{', '.join(sorted(kinds))}, variant"
            )
        want = kinds[key]
        if want is str:
            ok = str(value) != ""
        elif want is bool:
            ok = value in (0, 1)
        elif want is int:
            ok = isinstance(value, int)
        else:
            ok = isinstance(value, (int, float)) and math.isfinite(value)
        if not ok:
            expected = {float: "a finite number", int: "an integer", str: "a name",
                        bool: "0 or 1"}[want]
            raise InvalidInputError(
                f"bad data spec {spec!r}: option {key}={value!r} must be {expected}")
        if key == "length" and value < 1:
            raise InvalidInputError(f"bad data spec {spec!r}: length must be at least 1, "
                                    f"got {value}")


def parse_data_spec(spec: str) -> DataSpec:
    """Parse a ``--data`` value or a recipe's data spec (see the module docstring)."""
    text = spec.strip()
    if text.startswith("cache:"):
        return DataSpec("cache", "shapes", "", root=Path(text[len("cache:"):]).expanduser())
    text, _, query = text.partition("?")
    options = tuple((k, _coerce(v)) for k, v in parse_qsl(query, keep_blank_values=True))
    if query and not text.startswith(("shapes:", "shapes+:")):
        raise InvalidInputError(f"bad data spec {spec!r}: options after '?' are only for "
                                "shapes: data")
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
        given = dict(options)
        if "variant" in given:
            if variant != "default":
                raise InvalidInputError(f"bad data spec {spec!r}: the variant is given twice")
            variant = str(given.pop("variant"))
        _check_shapes_options(spec, given)
        return DataSpec("shapes", "shapes", parts[-1], variant=variant,
                        options=tuple(given.items()))
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
    if s.kind == "cache":
        from .shapes_cache import CachedShapes

        return CachedShapes(s.root).referring()
    if s.kind == "phrasecut":
        from .phrasecut import PhraseCutDataset

        return PhraseCutDataset(s.root, s.split, image_root=image_root)
    if s.kind == "refer":
        from .refer import ReferDataset

        return ReferDataset(s.root, s.dataset, s.split_by, s.split, image_root=image_root)
    params: dict[str, Any] = {"seed": seed, "length": length, **dict(s.options)}
    cache = params.pop("cache", None)
    if cache is not None:
        from .shapes_cache import open_cached_shapes

        given = {k: v for k, v in dict(s.options).items() if k != "cache"}
        return open_cached_shapes(s.split, Path(str(cache)).expanduser(),
                                  {**given, "variant": s.variant}).referring()
    from .shapes import ShapesRef

    return ShapesRef(s.split, variant=s.variant, **params).referring()
