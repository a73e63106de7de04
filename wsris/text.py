"""Text side: ALBEF caption cleaning and the bert-base-uncased WordPiece tokenizer.

The vocabulary ships inside the package (``assets/bert-base-uncased-vocab.txt``,
Apache-2.0, see ``assets/NOTICE``), so tokenizing never touches the network.

Two styles, chosen by a model's ``config.json`` (``"text": {"style": ...}``):

- ``albef``: ALBEF's cleaning (lowercase, strip ``,.'!?"()*#:;~``, ``-`` and ``/`` to
  spaces, at most ``max_words`` words) and ``[CLS]`` first with NO trailing ``[SEP]``,
  which is what ALBEF's checkpoints were trained with.
- ``bert``: plain ``[CLS] ... [SEP]`` (Shatter and Gather), whitespace folded only.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import torch

from .errors import TextError
from .pipelines.base import TextBatch

VOCAB_FILE = "bert-base-uncased-vocab.txt"
VOCAB_SIZE = 30522
# Longer input than this is not a referring expression; refuse it rather than tokenize
# megabytes of text.
MAX_TEXT_CHARS = 2000

_ALBEF_STRIP = re.compile(r"[,.'!?\"()*#:;~]")
_ALBEF_SPACE = re.compile(r"[-/]")
_WHITESPACE = re.compile(r"\s+")

TextStyle = Literal["albef", "bert"]


def clean_albef(text: str, max_words: int | None = 30) -> str:
    """ALBEF's caption cleaning (see ``shared/reference/albef.md``)."""
    text = _ALBEF_STRIP.sub("", text.lower())
    text = _ALBEF_SPACE.sub(" ", text)
    words = _WHITESPACE.sub(" ", text).strip().split(" ")
    if max_words is not None and len(words) > max_words:
        words = words[:max_words]
    return " ".join(w for w in words if w)


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
    truncated with a warning.
    """

    style: TextStyle = "bert"
    max_length: int = 40
    max_words: int | None = 30

    @classmethod
    def from_config(cls, text_config: dict) -> Tokenizer:
        style = text_config.get("style", "bert")
        if style not in ("albef", "bert"):
            raise ValueError(f"unknown text style {style!r}")
        return cls(
            style=style,
            max_length=int(text_config.get("max_length", 40)),
            max_words=text_config.get("max_words", 30),
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

    def __call__(self, texts: str | list[str]) -> TextBatch:
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not texts:
            raise TextError("expected a non-empty string or a non-empty list of strings")
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

    def _encode_one(self, tok, text: object) -> tuple[list[int], list[int | None]]:
        if not isinstance(text, str):
            raise TextError(f"expected text as str, got {type(text).__name__}")
        if len(text) > MAX_TEXT_CHARS:
            raise TextError(
                f"text of {len(text)} characters is longer than the {MAX_TEXT_CHARS} "
                "accepted for a referring expression"
            )
        words = self.words(text)
        if not words:
            raise TextError(f"text {text!r} is empty after cleaning")
        cls_id, sep_id, unk_id = _special_ids()
        enc = tok.encode(words, is_pretokenized=True, add_special_tokens=False)
        ids: list[int] = list(enc.ids)
        wids: list[int | None] = list(enc.word_ids)
        if not ids or all(i == unk_id for i in ids):
            raise TextError(f"text {text!r} tokenizes to nothing the model knows")
        specials = 1 if self.style == "albef" else 2
        room = self.max_length - specials
        if len(ids) > room:
            warnings.warn(
                f"text {text[:60]!r}... has {len(ids)} WordPieces; truncated to {room} "
                f"(max_length {self.max_length})",
                stacklevel=3,
            )
            ids, wids = ids[:room], wids[:room]
        ids = [cls_id, *ids]
        wids = [None, *wids]
        if self.style == "bert":
            ids.append(sep_id)
            wids.append(None)
        return ids, wids
