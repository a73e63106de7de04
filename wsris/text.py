"""Text side: ALBEF caption cleaning and the bert-base-uncased WordPiece tokenizer.

The vocabulary ships inside the package (``assets/bert-base-uncased-vocab.txt``,
Apache-2.0, see ``assets/NOTICE``), so tokenizing never touches the network.

Two styles, chosen by a model's ``config.json`` (``"text": {"style": ...}``):

- ``albef``: ALBEF's own ``pre_caption`` (:func:`pre_caption`: lowercase, strip
  ``,.'!?"()*#:;~``, ``-`` and ``/`` to spaces, ``<person>`` to ``person``, at most
  ``max_words`` words) and ``[CLS]`` first with NO trailing ``[SEP]``, which is what
  ALBEF's checkpoints were trained with.
- ``bert``: plain ``[CLS] ... [SEP]`` (Shatter and Gather), whitespace folded only.

``max_length`` counts WordPieces with the special tokens; ``null`` (or absent in a
converted ALBEF model) means the text encoder's own position limit, as ALBEF's
Grounding.py evaluates. Every text problem is a :class:`~wsris.errors.TextError`
(empty, not a string, too long to be an expression, nothing the vocabulary knows) or a
one-line :class:`~wsris.errors.TextWarning` (cut at ``max_words`` or ``max_length``,
mostly unknown WordPieces), the same for both methods.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from .errors import TextError, TextWarning, warn

if TYPE_CHECKING:
    import torch

VOCAB_FILE = "bert-base-uncased-vocab.txt"
VOCAB_SIZE = 30522
# Longer input than this is not a referring expression; refuse it rather than tokenize
# megabytes of text.
MAX_TEXT_CHARS = 2000


@dataclass
class TextBatch:
    """Tokenized expressions, one row per text, all for the same image.

    ``word_ids[t][p]`` is the index of the (cleaned, whitespace-split) word that WordPiece
    position ``p`` of text ``t`` came from, or ``None`` for special tokens and padding.
    """

    texts: list[str]
    input_ids: torch.Tensor  # [T, L] long
    attention_mask: torch.Tensor  # [T, L] long, 1 for real tokens
    tokens: list[list[str]]  # WordPieces per text, special tokens included, no padding
    word_ids: list[list[int | None]]

    def to(self, device: torch.device | str) -> TextBatch:
        return TextBatch(
            self.texts,
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.tokens,
            self.word_ids,
        )

_ALBEF_STRIP = re.compile(r"([,.'!?\"()*#:;~])")
_ALBEF_MULTISPACE = re.compile(r"\s{2,}")
_WHITESPACE = re.compile(r"\s+")
# Shortened texts in messages: this many characters at most.
_SHOWN_CHARS = 60
# Warn when at least this share of a text's WordPieces is [UNK] (or of its words is
# outside a model's known vocabulary).
UNKNOWN_WARN_SHARE = 0.5


def _shapes_vocabulary() -> frozenset[str]:
    from .data.shapes import vocabulary

    return vocabulary()


#: Closed training vocabularies a model config can name (``text.vocabulary``).
VOCABULARIES = {"shapes-ref": _shapes_vocabulary}

TextStyle = Literal["albef", "bert"]


def shorten(text: str, limit: int = _SHOWN_CHARS) -> str:
    """``text`` for a message: at most ``limit`` characters, ``...`` marking a cut, and
    the full length said when it was cut."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def pre_caption(caption: str, max_words: int | None = 30) -> str:
    """ALBEF's ``pre_caption`` (``dataset/utils.py``), step for step: lower-case, delete
    ``,.'!?"()*#:;~``, ``-`` and ``/`` to spaces, ``<person>`` to ``person``, runs of two or
    more whitespace characters to one space, strip a trailing newline and the spaces
    around, then keep at most ``max_words`` space-separated words."""
    caption = _ALBEF_STRIP.sub("", caption.lower())
    caption = caption.replace("-", " ").replace("/", " ").replace("<person>", "person")
    caption = _ALBEF_MULTISPACE.sub(" ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    if max_words is not None and len(words) > max_words:
        caption = " ".join(words[:max_words])
    return caption


def clean_albef(text: str, max_words: int | None = 30) -> str:
    """ALBEF's cleaning (:func:`pre_caption`) with the remaining whitespace folded to
    single spaces: the words are the ones WordPiece sees either way."""
    return " ".join(pre_caption(text, max_words).split())


def _albef_word_count(text: str) -> int:
    """How many words ``pre_caption`` counts before it cuts at ``max_words``."""
    caption = _ALBEF_STRIP.sub("", text.lower())
    caption = caption.replace("-", " ").replace("/", " ").replace("<person>", "person")
    caption = _ALBEF_MULTISPACE.sub(" ", caption).rstrip("\n").strip(" ")
    return len(caption.split(" "))


@lru_cache(maxsize=1)
def _wordpiece():
    # transformers 5.x's BertTokenizer(Fast)(vocab_file=...) silently builds a 5-token
    # vocab here, so the tokenizers library is used directly.
    from tokenizers import BertWordPieceTokenizer

    vocab = resources.files("wsris") / "assets" / VOCAB_FILE
    with resources.as_file(vocab) as path:
        tokenizer = BertWordPieceTokenizer(str(path), lowercase=True)
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(
            f"the bundled WordPiece vocab has {tokenizer.get_vocab_size()} entries, "
            f"expected {VOCAB_SIZE}; the package is damaged"
        )
    return tokenizer


@lru_cache(maxsize=1)
def _special_ids() -> tuple[int, int, int]:
    tok = _wordpiece()
    return tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]"), tok.token_to_id("[UNK]")


@dataclass(frozen=True)
class Tokenizer:
    """Turns expressions into a padded :class:`TextBatch`.

    ``max_length`` counts WordPieces including special tokens; longer expressions are
    truncated with a :class:`~wsris.errors.TextWarning`, as are ALBEF-style texts of
    more than ``max_words`` words.
    """

    style: TextStyle = "bert"
    max_length: int = 40
    max_words: int | None = 30
    # the words a model was trained on, when that is a closed set (config text
    # "vocabulary": "shapes-ref"); texts mostly outside it get a TextWarning
    known_words: frozenset[str] | None = None

    @classmethod
    def from_config(cls, text_config: dict, encoder_limit: int | None = None) -> Tokenizer:
        """The tokenizer a model config's ``text`` section describes. ``encoder_limit``
        (the text encoder's position count) is the ``max_length`` when the config gives
        none, and caps the one it gives."""
        style = text_config.get("style", "bert")
        if style not in ("albef", "bert"):
            raise ValueError(f"unknown text style {style!r}")
        raw = text_config.get("max_length", 40 if encoder_limit is None else None)
        max_length = int(raw) if raw is not None else int(encoder_limit or 512)
        if encoder_limit is not None:
            max_length = min(max_length, int(encoder_limit))
        vocabulary = text_config.get("vocabulary")
        known = None
        if vocabulary is not None:
            if vocabulary not in VOCABULARIES:
                raise ValueError(f"unknown text vocabulary {vocabulary!r}; known: "
                                 f"{sorted(VOCABULARIES)}")
            known = VOCABULARIES[vocabulary]()
        return cls(
            style=style,
            max_length=max_length,
            max_words=text_config.get("max_words", 30),
            known_words=known,
        )

    @property
    def vocab_size(self) -> int:
        return _wordpiece().get_vocab_size()

    def clean(self, text: str) -> str:
        if self.style == "albef":
            return clean_albef(text, self.max_words)
        return _WHITESPACE.sub(" ", text).strip()

    def words(self, text: str) -> list[str]:
        """The cleaned words that ``word_ids`` index into."""
        cleaned = self.clean(text)
        return cleaned.split(" ") if cleaned else []

    def check(self, texts: str | Sequence[str]) -> list[str]:
        """Validate ``texts`` without building tensors (no torch needed): raises
        :class:`TextError` for the first unusable one and returns them as a list."""
        texts = as_text_list(texts)
        tok = _wordpiece()
        for text in texts:
            self._encode_one(tok, text, quiet=True)
        return texts

    def __call__(self, texts: str | Sequence[str]) -> TextBatch:
        import torch

        texts = as_text_list(texts)
        tok = _wordpiece()
        rows: list[list[int]] = []
        pieces: list[list[str]] = []
        word_ids: list[list[int | None]] = []
        for text in texts:
            ids, wids = self._encode_one(tok, text)
            rows.append(ids)
            word_ids.append(wids)
            pieces.append([tok.id_to_token(i) for i in ids])
        width = max(len(r) for r in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)  # [PAD] is id 0
        attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention_mask[i, : len(ids)] = 1
        return TextBatch(list(texts), input_ids, attention_mask, pieces, word_ids)

    def _encode_one(
        self, tok: Any, text: object, quiet: bool = False
    ) -> tuple[list[int], list[int | None]]:
        check_text(text)
        assert isinstance(text, str)
        words = self.words(text)
        if not words:
            raise TextError(f"text {shorten(text)} is empty after cleaning")
        cls_id, sep_id, unk_id = _special_ids()
        enc = tok.encode(words, is_pretokenized=True, add_special_tokens=False)
        ids: list[int] = list(enc.ids)
        wids: list[int | None] = list(enc.word_ids)
        if not ids or all(i == unk_id for i in ids):
            raise TextError(f"text {shorten(text)} tokenizes to nothing the model knows")
        if quiet:
            return ids, wids
        if self.style == "albef" and self.max_words is not None:
            count = _albef_word_count(text)
            if count > self.max_words:
                warn(f"text {shorten(text)} has {count} words; cut to the first "
                     f"{self.max_words} (max_words, as ALBEF's pre_caption does)", TextWarning,
                     stacklevel=4)
        unknown = sum(i == unk_id for i in ids)
        if unknown / len(ids) >= UNKNOWN_WARN_SHARE:
            warn(f"text {shorten(text)}: {unknown} of {len(ids)} WordPieces are unknown to the "
                 "vocabulary ([UNK]); the result rests on the few it knows", TextWarning,
                 stacklevel=4)
        if self.known_words is not None:
            outside = [w for w in words if w.lower() not in self.known_words]
            if len(outside) / len(words) >= UNKNOWN_WARN_SHARE:
                warn(f"text {shorten(text)}: {len(outside)} of {len(words)} words are outside "
                     "the vocabulary this model was trained on; the result rests on the few "
                     "it knows", TextWarning, stacklevel=4)
        specials = 1 if self.style == "albef" else 2
        room = self.max_length - specials
        if len(ids) > room:
            warn(f"text {shorten(text)} has {len(ids)} WordPieces; truncated to {room} "
                 f"(max_length {self.max_length})", TextWarning, stacklevel=4)
            ids, wids = ids[:room], wids[:room]
        ids = [cls_id, *ids]
        wids = [None, *wids]
        if self.style == "bert":
            ids.append(sep_id)
            wids.append(None)
        return ids, wids


def as_text_list(texts: object) -> list[str]:
    """One string or a non-empty list/tuple of strings -> a list; anything else is a
    :class:`TextError` naming what was given."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise TextError(
            f"expected text as a string or a list of strings, got {type(texts).__name__}"
        )
    if not texts:
        raise TextError("no text given: pass a string or a non-empty list of strings")
    for text in texts:
        check_text(text)
    return list(texts)


def check_text(text: object) -> None:
    """The model-independent checks of one text: a string, not blank, not megabytes."""
    if not isinstance(text, str):
        raise TextError(f"expected text as str, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise TextError(
            f"text {shorten(text)} is longer than the {MAX_TEXT_CHARS} characters accepted "
            "for a referring expression"
        )
    if not text.strip():
        raise TextError(f"text {text!r} is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: bytes that were not UTF-8
        raise TextError(
            f"text {text.encode('utf-8', 'backslashreplace').decode('ascii', 'replace')[:60]!r} "
            "is not valid Unicode (invalid UTF-8 bytes or a lone surrogate at position "
            f"{exc.start})"
        ) from None
