"""CLIP's byte-level BPE tokenizer, as TRIS feeds its text encoder.

The merges file is CLIP's ``bpe_simple_vocab_16e6.txt.gz``, read from the PyPI package
``open_clip_torch`` (which ships the same file as CLIP and TRIS) and checked by sha256.

TRIS tokenizes with ``clip.tokenize(text)`` (context 77: start token, BPE ids, end token,
zero padding; longer texts are an error) and keeps the first 20 ids. A text of more than
18 BPE tokens therefore loses its end token, and stage 1 then reads its sentence feature
at the highest id left (CLIP picks the end token by ``argmax``). That is what the
released models were trained and evaluated with, so it is done here too, with a
:class:`~wsris.errors.TextWarning`. Padding is id 0 (``!``) and is attended to.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import TextError, TextWarning, warn
from ...text import TextBatch, as_text_list, check_text, shorten

if TYPE_CHECKING:
    import regex

VOCAB_PACKAGE = "open_clip"  # the import name of PyPI's open_clip_torch
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
NUM_MERGES = 49152 - 256 - 2  # CLIP reads lines 1..48894 of the file
START, END = "<|startoftext|>", "<|endoftext|>"
CONTEXT = 77  # clip.tokenize's context length: longer texts are refused there
WORD_PATTERN = (r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                r"[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")


def vocab_path() -> Path:
    """The merges file inside the installed ``open_clip_torch`` (not imported: only found)."""
    spec = importlib.util.find_spec(VOCAB_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TextError(
            "TRIS models need CLIP's BPE vocabulary from the PyPI package open_clip_torch: "
            "pip install open_clip_torch"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE
    if not path.is_file():
        raise TextError(f"{path} is missing: reinstall open_clip_torch")
    return path


def byte_alphabet() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map of the 256 bytes to printable characters:
    printable Latin-1 bytes map to themselves, the rest to code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, int], dict[tuple[str, str], int], dict[int, str]]:
    path = vocab_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != VOCAB_SHA256:
        raise TextError(f"{path} has sha256 {digest}, not CLIP's {VOCAB_SHA256}")
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1:NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = list(byte_alphabet().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges),
             START, END]
    encoder = {token: i for i, token in enumerate(vocab)}
    ranks = {pair: i for i, pair in enumerate(merges)}  # type: ignore[misc]
    return encoder, ranks, {i: t for t, i in encoder.items()}


@lru_cache(maxsize=1)
def _pattern() -> regex.Pattern[str]:
    import regex

    return regex.compile(WORD_PATTERN, regex.IGNORECASE)


def clean(text: str) -> str:
    """CLIP's cleaning: ftfy's text repair, HTML unescaped twice, whitespace folded,
    lower case."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # a dependency of open_clip_torch; without it, no text repair
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


@lru_cache(maxsize=10_000)
def bpe(word: str) -> tuple[str, ...]:
    """Merge the symbols of one pre-token (bytes already mapped), lowest rank first."""
    _, ranks, _ = _tables()
    parts = [*word[:-1], word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = {(a, b) for a, b in zip(parts, parts[1:], strict=False)}
        best = min(pairs, key=lambda p: ranks.get(p, len(ranks)))
        if best not in ranks:
            break
        merged: list[str] = []
        i = 0
        while i < len(parts):
            if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return tuple(parts)


def encode(text: str) -> tuple[list[int], list[int]]:
    """BPE ids of ``text`` and, for each id, the index of the word (pre-token) it is from."""
    encoder, _, _ = _tables()
    alphabet = byte_alphabet()
    ids: list[int] = []
    words: list[int] = []
    for w, token in enumerate(_pattern().findall(clean(text))):
        mapped = "".join(alphabet[b] for b in token.encode("utf-8"))
        for piece in bpe(mapped):
            ids.append(encoder[piece])
            words.append(w)
    return ids, words


@dataclass(frozen=True)
class ClipTokenizer:
    """Texts -> a :class:`~wsris.text.TextBatch` of ``length`` ids per row, as TRIS builds."""

    length: int = 20

    @classmethod
    def from_config(cls, text_config: dict[str, Any]) -> ClipTokenizer:
        return cls(length=int(text_config.get("max_length", 20)))

    def words(self, text: str) -> list[str]:
        return list(_pattern().findall(clean(text)))

    def check(self, texts: str | Sequence[str]) -> list[str]:
        texts = as_text_list(texts)
        for text in texts:
            self._row(text, quiet=True)
        return texts

    def _row(self, text: object, quiet: bool = False) -> tuple[list[int], list[int | None]]:
        check_text(text)
        assert isinstance(text, str)
        ids, words = encode(text)
        if not ids:
            raise TextError(f"text {shorten(text)} is empty after cleaning")
        if len(ids) + 2 > CONTEXT:
            raise TextError(f"text {shorten(text)} has {len(ids)} BPE tokens; CLIP's "
                            f"tokenizer takes at most {CONTEXT - 2}")
        encoder = _tables()[0]
        row = [encoder[START], *ids, encoder[END]]
        wids: list[int | None] = [None, *words, None]
        if len(row) > self.length and not quiet:
            warn(f"text {shorten(text)} has {len(ids)} BPE tokens; TRIS keeps the first "
                 f"{self.length} ids, start token included, so the end token is cut",
                 TextWarning, stacklevel=4)
        return row[: self.length], wids[: self.length]

    def __call__(self, texts: str | Sequence[str]) -> TextBatch:
        import torch

        texts = as_text_list(texts)
        decoder = _tables()[2]
        rows = [self._row(t) for t in texts]
        input_ids = torch.zeros(len(rows), self.length, dtype=torch.long)
        mask = torch.zeros(len(rows), self.length, dtype=torch.long)
        for i, (ids, _) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
        tokens = [[decoder[i] for i in ids] for ids, _ in rows]
        return TextBatch(list(texts), input_ids, mask, tokens, [w for _, w in rows])
