"""The one sentence splitter (longdoc.data.sentences) and its two users' views of it."""

from __future__ import annotations

import pytest

from longdoc.data import hat_segments
from longdoc.data.sentences import ABBREVIATIONS, sentence_token_ranges, split_sentences
from longdoc.metrics import summarization

# abbreviations each former splitter knew and the other did not, initials of both kinds
MERGED = [
    "See Sect. 4 and Prof. Ada Lovelace, resp. Col. Mustard, esp. Chap. 2 of Vol. 3.",
    "Written by J. Smith and b. Jones, i.e. Two Authors of the U.S. office.",
    "Is it done?",
    "Yes!",
]


def texts(text, spans):
    return [text[a:b] for a, b in spans]


def test_merged_abbreviations_and_initials_do_not_end_sentences():
    text = " ".join(MERGED)
    assert texts(text, split_sentences(text)) == MERGED
    assert {"sect", "resp", "esp", "prof", "col", "chap", "vol"} <= ABBREVIATIONS


def test_both_callers_use_the_same_splitter():
    text = " ".join(MERGED) + "\n\nA new paragraph. It goes on\nover a line."
    spans = split_sentences(text)
    assert hat_segments.split_sentences(text) == spans  # HAT reads the spans as they are
    # summarization: the same sentences, but every line break is a boundary and whitespace is normalised
    assert summarization.split_sentences(text) == MERGED + ["A new paragraph.", "It goes on", "over a line."]
    assert texts(text, spans)[-1] == "It goes on\nover a line."


@pytest.mark.parametrize("line_breaks", [False, True])
def test_spans_are_exact_slices_in_order_without_outer_whitespace(line_breaks):
    text = "  First one.   Second (with e.g. this) one!\r\n\r\n  \"Third\" follows? 4 is a start.\n"
    spans = split_sentences(text, line_breaks=line_breaks)
    assert all(a < b and not text[a].isspace() and not text[b - 1].isspace() for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    assert texts(text, spans) == ["First one.", "Second (with e.g. this) one!", '"Third" follows?', "4 is a start."]


def test_token_ranges_cut_the_tokens_into_sentences():
    text = "Ab cd. Ef gh ij. Kl."
    spans = split_sentences(text)
    offsets = [(0, 2), (3, 6), (7, 9), (10, 12), (13, 16), (17, 20)]  # whitespace-separated "tokens"
    assert sentence_token_ranges(offsets, spans) == [(0, 2), (2, 5), (5, 6)]
