from __future__ import annotations

import warnings

import pytest

from wsris.errors import TextError, TextWarning, WsrisWarning
from wsris.text import VOCAB_SIZE, Tokenizer, clean_albef, pre_caption


def test_clean_albef_rules():
    assert clean_albef("The MAN, in a Blue-Shirt!") == "the man in a blue shirt"
    assert clean_albef("left/right  (big) 'cat'?") == "left right big cat"
    assert clean_albef("a " * 40, max_words=30) == " ".join(["a"] * 30)


# Expected outputs written by hand from ALBEF's documented pre_caption (dataset/utils.py;
# shared/reference/albef.md): lower-case; delete , . ' ! ? " ( ) * # : ; ~; "-" and "/" to
# a space; "<person>" to "person"; runs of 2+ whitespace to one space; strip a trailing
# newline and the spaces around; keep at most max_words space-separated words.
@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("<person> in red", "person in red"),
        ("A <PERSON> holding a <person>'s bag", "a person holding a persons bag"),
        ("Man, (left)!", "man left"),
        ('"quoted" *star* #tag: a;b~c', "quoted star tag abc"),
        ("top-left/right", "top left right"),
        ("  two   spaces  ", "two spaces"),
        ("a \n", "a"),
        ("tab\tkept", "tab\tkept"),  # one whitespace character is not a run: kept as is
        ("<b>old</b>", "<b>old< b>"),  # only <person> is special; "/" is a space
        ("UPPER lower MiXeD", "upper lower mixed"),
    ],
)
def test_pre_caption_matches_albef(caption, expected):
    assert pre_caption(caption, max_words=30) == expected


def test_pre_caption_word_limit_counts_like_albef():
    words = " ".join(f"w{i}" for i in range(35))
    assert pre_caption(words, max_words=30) == " ".join(f"w{i}" for i in range(30))
    # the tokenizer's words are the same ones, and the cut is announced
    tok = Tokenizer(style="albef", max_length=100, max_words=30)
    with pytest.warns(TextWarning, match="has 35 words; cut to the first 30"):
        batch = tok([words])
    assert max(w for w in batch.word_ids[0] if w is not None) == 29


def test_person_tag_tokenizes_as_the_word():
    tok = Tokenizer(style="albef")
    assert tok(["<person> left"]).tokens[0] == ["[CLS]", "person", "left"]


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


def test_text_problems_are_text_errors_or_text_warnings():
    tok = Tokenizer(style="bert", max_length=40)
    for bad in (None, 5, b"bytes", ["ok", 3]):
        with pytest.raises(TextError, match="expected text"):
            tok(bad)  # type: ignore[arg-type]
    # mostly unknown WordPieces: a warning naming the share
    with pytest.warns(TextWarning, match="2 of 3 WordPieces are unknown"):
        tok(["\u2603 \u2603 cat"])
    assert issubclass(TextWarning, WsrisWarning) and issubclass(TextWarning, UserWarning)


def test_check_validates_without_building_tensors():
    tok = Tokenizer(style="albef")
    assert tok.check("red one") == ["red one"]
    with pytest.raises(TextError, match="empty"):
        tok.check(["fine", "?!"])


def test_encoder_limit_is_the_default_and_the_cap():
    assert Tokenizer.from_config({"style": "albef", "max_length": None}, 512).max_length == 512
    assert Tokenizer.from_config({"style": "albef"}, encoder_limit=512).max_length == 512
    assert Tokenizer.from_config({"style": "bert", "max_length": 40}, 32).max_length == 32
    assert Tokenizer.from_config({"style": "bert"}).max_length == 40


def test_words_outside_a_closed_training_vocabulary_warn():
    import warnings

    from wsris.data.shapes import ShapesRef, vocabulary
    from wsris.errors import TextWarning
    from wsris.text import Tokenizer

    # the vocabulary covers every expression the generator writes, in every variant
    for variant in ("default", "plus"):
        for scene in ShapesRef("val", variant=variant, length=150):
            for e in scene.expressions:
                assert set(e.text.split()) <= vocabulary(), e.text
    tok = Tokenizer.from_config({"style": "albef", "vocabulary": "shapes-ref"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tok(["zebra", "the red zebra", "red zebra giraffe", "the small red circle"])
    messages = [str(w.message) for w in caught if issubclass(w.category, TextWarning)]
    assert len(messages) == 2  # 1 of 1 and 2 of 3 words outside; 1 of 3 and 0 are fine
    assert "'zebra': 1 of 1 words" in messages[0] and "2 of 3 words" in messages[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Tokenizer.from_config({"style": "albef"})(["zebra"])  # no closed vocabulary
    assert not [w for w in caught if issubclass(w.category, TextWarning)]
    with pytest.raises(ValueError, match="unknown text vocabulary"):
        Tokenizer.from_config({"vocabulary": "coco"})


def test_bundled_shapes_models_name_their_vocabulary():
    from wsris.weights.manifest import get_spec

    for name in ("albef-chunk-shapes", "sag-shapes"):
        assert get_spec(name).config["text"]["vocabulary"] == "shapes-ref"
