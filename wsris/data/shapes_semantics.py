"""What a Shapes-Ref expression is true of on any scene: the grammar's semantics, read
back from the text.

:mod:`.shapes_grammar` generates an expression for a target of its own scene and checks
that it picks out that target. This module goes the other way: it parses any text of the
grammar (attribute, relation, location and negation forms, in the grammar's fixed
phrasings) and evaluates it on any scene, so one can ask whether another scene's
expression is true of this scene's objects.

The semantics are the grammar's own, with its dead zones kept three-valued:

* attribute ``[the] NP``: the objects that fit every attribute word of ``NP``;
* relation ``[the] NP REL the LANDMARK``: the landmark is the object that ``LANDMARK``
  fits (a definite description; read existentially, and flagged, when several fit, and
  true of nothing when none fits). An object other than the landmark that fits ``NP`` is
  true, false or unclear as :func:`~.shapes_grammar.relation_value` says;
* location ``the leftmost NP`` / ``the NP on the left`` (and right, top, bottom): among
  the objects that fit ``NP``, one is true when it is the extreme by at least the grammar's
  margin, false when some other one is more extreme by at least the margin, otherwise
  unclear (:func:`~.shapes_grammar.extreme_value`, which the generator uses too). A
  single fitting object is vacuously the extreme (the grammar never *generates* that
  case, as the location is then not needed, but the phrase is still true of it);
* negation ``the SHAPE that is not COLOUR|SIZE``, ``the COLOUR shape that is not a SHAPE``:
  the objects that fit the positive part and not the negated word.

The pragmatic conditions the generator adds (the relation or location must be needed, a
negation must exclude something) decide what is *said*, not what is *true*, and are not
part of the truth conditions here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError
from .shapes_grammar import (
    _LOCATION_TEMPLATES,
    _RELATION_WORDS,
    COLOURS,
    SHAPES,
    SIZES,
    ShapeObject,
    ShapesConfig,
    _denotation,
    _Desc,
    extreme_value,
    relation_value,
)

__all__ = ["Parse", "Reading", "parse", "evaluate", "denotation"]

_ARTICLES = ("the", "a")
#: (relation phrase as words, relation), longest phrase first so "to the left of" wins.
_REL_PHRASES: list[tuple[tuple[str, ...], str]] = sorted(
    ((tuple(p.split()), rel) for rel, ps in _RELATION_WORDS.items() for p in ps),
    key=lambda x: -len(x[0]),
)
#: Location templates as (prefix words, suffix words, location).
_LOC_FORMS: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (tuple(t.split("{np}")[0].split()), tuple(t.split("{np}")[1].split()), where)
    for where, ts in _LOCATION_TEMPLATES.items() for t in ts
]


@dataclass(frozen=True)
class Parse:
    """A parsed expression. ``kind`` is one of the grammar's kinds; ``head`` is the noun
    phrase the expression refers with; ``landmark``/``relation`` are set for relations,
    ``location`` for locations, ``negated`` (attribute name, value) for negations."""

    kind: str
    head: _Desc
    relation: str | None = None
    landmark: _Desc | None = None
    location: str | None = None
    negated: tuple[str, str] | None = None


@dataclass(frozen=True)
class Reading:
    """An expression evaluated on a scene.

    ``true``: objects it is clearly true of; ``unclear``: objects in the grammar's dead
    zone (a borderline relation or location); ``landmarks``: for a relation, the objects
    its landmark phrase fits (a proper landmark is exactly one).
    """

    parse: Parse
    true: tuple[int, ...]
    unclear: tuple[int, ...] = ()
    landmarks: tuple[int, ...] | None = None

    @property
    def landmark_unique(self) -> bool:
        return self.landmarks is None or len(self.landmarks) == 1

    @property
    def refers(self) -> bool:
        """True of exactly one object, clearly, with nothing unclear and a unique landmark:
        a proper referring expression on this scene."""
        return len(self.true) == 1 and not self.unclear and self.landmark_unique


def _np(words: Sequence[str], text: str) -> _Desc:
    """``[the|a] [size] [colour] shape-word`` (``shape`` names no particular shape)."""
    w = list(words)
    if w and w[0] in _ARTICLES:
        w = w[1:]
    size = w.pop(0) if w and w[0] in SIZES else None
    colour = w.pop(0) if w and w[0] in COLOURS else None
    if len(w) != 1 or (w[0] != "shape" and w[0] not in SHAPES):
        raise InvalidInputError(f"not a Shapes-Ref noun phrase: {' '.join(words)!r} in {text!r}")
    return _Desc(size, colour, None if w[0] == "shape" else w[0])


def _negation(words: list[str], text: str) -> Parse | None:
    """``the SHAPE that is not COLOUR|SIZE`` / ``the COLOUR shape that is not a SHAPE``."""
    for k in range(len(words) - 2):
        if words[k:k + 3] == ["that", "is", "not"]:
            rest = words[k + 3:]
            if rest[:1] == ["a"]:
                rest = rest[1:]
            if len(rest) != 1:
                raise InvalidInputError(f"not a Shapes-Ref negation: {text!r}")
            v = rest[0]
            attr = ("size" if v in SIZES else "colour" if v in COLOURS
                    else "shape" if v in SHAPES else None)
            if attr is None:
                raise InvalidInputError(f"not a Shapes-Ref negation: {text!r}")
            return Parse("negation", _np(words[:k], text), negated=(attr, v))
    return None


def _location(words: list[str], text: str) -> Parse | None:
    """``the leftmost NP``, ``the NP on the left`` and the other location templates."""
    for pre, suf, where in _LOC_FORMS:
        n, m = len(pre), len(suf)
        if (len(words) > n + m and tuple(words[:n]) == pre
                and tuple(words[len(words) - m:]) == suf):
            try:
                return Parse("location", _np(words[n:len(words) - m], text), location=where)
            except InvalidInputError:
                continue
    return None


def _relation(words: list[str], text: str) -> Parse | None:
    """``[the] NP REL the NP``; the earliest, then longest, relation phrase wins."""
    for k in range(1, len(words)):
        for phrase, rel in _REL_PHRASES:
            tail = words[k + len(phrase):]
            if tuple(words[k:k + len(phrase)]) == phrase and tail[:1] == ["the"]:
                try:
                    return Parse("relation", _np(words[:k], text), relation=rel,
                                 landmark=_np(tail, text))
                except InvalidInputError:
                    continue
    return None


@functools.lru_cache(maxsize=65536)  # training evaluates the same few thousand texts
def parse(text: str) -> Parse:
    """Parse a Shapes-Ref expression; :class:`~wsris.errors.InvalidInputError` when the
    text is not in the grammar."""
    words = text.lower().split()
    for form in (_negation, _location, _relation):
        p = form(words, text)
        if p is not None:
            return p
    return Parse("attribute", _np(words, text))


def evaluate(text: str | Parse, objects: Sequence[ShapeObject], config: ShapesConfig
             ) -> Reading:
    """Evaluate ``text`` (or its :func:`parse`) on a scene's ``objects`` (with
    ``size``, ``colour``, ``shape``, ``center``, ``radius``) under ``config``'s relation
    margin, "next to" distance and image size."""
    p = parse(text) if isinstance(text, str) else text
    fits = _denotation(p.head, objects)
    if p.kind == "attribute":
        return Reading(p, tuple(fits))
    if p.kind == "negation":
        attr, v = p.negated  # type: ignore[misc]
        return Reading(p, tuple(i for i in fits if getattr(objects[i], attr) != v))
    values: dict[int, bool | None] = {}
    landmarks: tuple[int, ...] | None = None
    if p.kind == "location":
        margin = config.relation_margin * config.image_size
        for i in fits:
            values[i] = extreme_value(p.location, i, fits, objects, margin)  # type: ignore[arg-type]
    else:  # relation: true of i when true for some landmark, false when false for all
        landmarks = tuple(_denotation(p.landmark, objects))  # type: ignore[arg-type]
        for i in fits:
            vs = [relation_value(p.relation, objects[i], objects[j], config)  # type: ignore[arg-type]
                  for j in landmarks if j != i]
            values[i] = True if True in vs else None if None in vs else False
    return Reading(
        p,
        tuple(i for i, v in values.items() if v is True),
        tuple(i for i, v in values.items() if v is None),
        landmarks,
    )


def denotation(text: str, objects: Sequence[ShapeObject], config: ShapesConfig) -> list[int]:
    """The indices of the objects ``text`` is (clearly) true of on a scene, under the
    grammar's semantics (see :func:`evaluate` for the dead zones and landmarks).

    >>> from wsris.data.shapes import ShapesRef
    >>> val = ShapesRef("val")
    >>> scene, e = val[0], val[0].expressions[0]
    >>> denotation(e.text, scene.objects, val.config) == [e.target]
    True
    """
    return list(evaluate(text, objects, config).true)
