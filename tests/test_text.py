from __future__ import annotations

import warnings

import pytest

from wsris.errors import TextError
from wsris.text import VOCAB_SIZE, Tokenizer, clean_albef


def test_clean_albef_rules():
    assert clean_albef("The MAN, in a Blue-Shirt!") == "the man in a blue shirt"
    assert clean_albef("left/right  (big) 'cat'?") == "left right big cat"
    assert clean_albef("a " * 40, max_words=30) == " ".join(["a"] * 30)


def test_vocab_is_the_full_bert_vocab():
    assert Tokenizer().vocab_size == VOCAB_SIZE == 30522


def test_albef_style_has_cls_and_no_sep():
    batch = Tokenizer(style="albef")(["man in blue shirt"])
    assert batch.tokens[0] == ["[CLS]", "man", "in", "blue", "shirt"]
    assert batch.input_ids[0, 0].item() == 101  # [CLS] in bert-base-uncased
    assert 102 not in batch.input_ids[0].tolist()  # no [SEP]


def test_bert_style_and_padding_and_word_ids():
    batch = Tokenizer(style="bert")(["a cat", "the leftmost hexagon"])
    assert batch.tokens[0] == ["[CLS]", "a", "cat", "[SEP]"]
    # "leftmost" and "hexagon" split into several WordPieces; word_ids map them back
    pieces = batch.tokens[1]
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert "".join(p.removeprefix("##") for p in pieces[1:-1]) == "theleftmosthexagon"
    wids = batch.word_ids[1]
    assert wids[0] is None and wids[-1] is None
    assert [w for w in wids if w is not None] == sorted(w for w in wids if w is not None)
    assert set(w for w in wids if w is not None) == {0, 1, 2}
    assert len(pieces) > 5  # at least one word was split
    width = batch.input_ids.shape[1]
    assert width == len(pieces)
    assert batch.attention_mask[0].tolist() == [1] * 4 + [0] * (width - 4)
    assert batch.input_ids[0, 4:].tolist() == [0] * (width - 4)


def test_empty_and_unusable_text():
    tok = Tokenizer(style="albef")
    for bad in ["", "   ", "?!.,"]:
        with pytest.raises(TextError):
            tok([bad])
    with pytest.raises(TextError):
        tok([])
    with pytest.raises(TextError, match="str"):
        tok([None])  # type: ignore[list-item]
    with pytest.raises(TextError, match="longer"):
        tok(["x" * 5000])


def test_truncation_warns_and_keeps_max_length():
    tok = Tokenizer(style="bert", max_length=8, max_words=None)
    with pytest.warns(UserWarning, match="truncated"):
        batch = tok(["one two three four five six seven eight nine ten"])
    assert batch.input_ids.shape[1] == 8
    assert batch.tokens[0][-1] == "[SEP]"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok(["short text"])  # no warning when it fits
