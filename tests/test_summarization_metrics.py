"""ROUGE, the sentence splitter and the lead baseline (longdoc.metrics.summarization)."""

from collections import Counter

import pytest

from longdoc.metrics.summarization import ROUGE_TYPES, lead_baseline, rouge_scores, split_sentences


def _f(hits: int, predicted: int, reference: int) -> float:
    if hits == 0:
        return 0.0
    precision, recall = hits / predicted, hits / reference
    return 2 * precision * recall / (precision + recall)


def _ngram_f(pred: list[str], ref: list[str], n: int) -> float:
    grams = lambda tokens: Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))  # noqa: E731
    p, r = grams(pred), grams(ref)
    return _f(sum((p & r).values()), sum(p.values()), sum(r.values()))


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_identical_is_one_and_disjoint_is_zero():
    text = "The open() call opens a file. It returns a descriptor."
    assert rouge_scores([text], [text]) == {key: pytest.approx(1.0) for key in ROUGE_TYPES}
    assert rouge_scores(["red green blue"], ["one two three"]) == {key: 0.0 for key in ROUGE_TYPES}
    assert set(rouge_scores([text], [text])) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}


def test_partial_overlap_matches_an_independent_computation():
    # words of at most 3 letters: the Porter stemmer leaves them alone; the tokenizer lower-cases
    prediction, reference = "The cat ate the rat", "the cat sat on the mat"
    pred, ref = prediction.lower().split(), reference.lower().split()
    scores = rouge_scores([prediction], [reference])
    assert scores["rouge1"] == pytest.approx(_ngram_f(pred, ref, 1)) == pytest.approx(6 / 11)  # 3 hits, 5 vs 6
    assert scores["rouge2"] == pytest.approx(_ngram_f(pred, ref, 2)) == pytest.approx(2 / 9)  # 1 hit, 4 vs 5
    assert scores["rougeL"] == pytest.approx(_f(_lcs(pred, ref), len(pred), len(ref)))
    assert scores["rougeLsum"] == pytest.approx(scores["rougeL"])  # one sentence each


def test_scores_are_means_over_pairs():
    same, other = "get the file status", "map pages of memory"
    scores = rouge_scores([same, other, "get the file"], [same, same, same])
    third = _ngram_f("get the file".split(), same.split(), 1)  # 3 of 3 vs 3 of 4: 6/7
    assert scores["rouge1"] == pytest.approx((1 + 0 + third) / 3)


def test_stemming_is_on():
    # Porter: cats -> cat, running -> run, runs -> run
    assert rouge_scores(["cats running"], ["cat runs"])["rouge1"] == pytest.approx(1.0)


def test_rouge_lsum_uses_sentences():
    reference = "One two six. Ten red car."
    prediction = "Ten red car. One two six."  # the same sentences, swapped
    scores = rouge_scores([prediction], [reference])
    assert scores["rouge1"] == pytest.approx(1.0)
    tokens = lambda text: text.lower().replace(".", "").split()  # noqa: E731
    assert _lcs(tokens(prediction), tokens(reference)) == 3
    assert scores["rougeL"] == pytest.approx(0.5)  # one LCS over the whole text: 3 of 6
    assert scores["rougeLsum"] == pytest.approx(1.0)  # each reference sentence fully matched
    # a period before a lower-case word is no boundary (see split_sentences): one sentence, Lsum = L
    lower = rouge_scores([prediction.lower()], [reference.lower()])
    assert lower["rougeLsum"] == pytest.approx(lower["rougeL"]) == pytest.approx(0.5)
    lines = rouge_scores(["ten red car\none two six"], ["one two six\nten red car"])
    assert lines["rougeLsum"] == pytest.approx(1.0) and lines["rougeL"] == pytest.approx(0.5)


def test_errors():
    with pytest.raises(ValueError, match="2 predictions and 1 references"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        rouge_scores([], [])
    with pytest.raises(TypeError, match=r"references\[0\]"):
        rouge_scores(["a"], [None])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("See open(2). Then close it! Really? yes.", ["See open(2).", "Then close it!", "Really? yes."]),
        ("Use a flag, e.g. O_RDONLY here. Done.", ["Use a flag, e.g. O_RDONLY here.", "Done."]),
        ("That is, i.e. The end.", ["That is, i.e. The end."]),
        ("Written by J. Smith in 1993. Fixed.", ["Written by J. Smith in 1993.", "Fixed."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("Since Linux 2.6.1 it works.  (Mostly.)", ["Since Linux 2.6.1 it works.", "(Mostly.)"]),
        ("file.c and foo.bar stay. lower case follows. Here", ["file.c and foo.bar stay. lower case follows.", "Here"]),
        ("SYNOPSIS\n\n  int   open(void);\nDESCRIPTION", ["SYNOPSIS", "int open(void);", "DESCRIPTION"]),
        ("", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


MAN_TEXT = """LIBRARY
Standard C library (libc, -lc)

SYNOPSIS
#include <fcntl.h>

int open(const char *pathname, int flags);

DESCRIPTION
The open() system call opens the file specified by pathname. If the file does not exist, it may be created.

The return value is a file descriptor.
"""


def test_lead_baseline_takes_the_first_sentence_of_description():
    assert lead_baseline(MAN_TEXT) == "The open() system call opens the file specified by pathname."
    # without the DESCRIPTION rule: the leading title line is skipped, then the first sentence
    assert lead_baseline(MAN_TEXT, section=None) == "Standard C library (libc, -lc)"
    assert lead_baseline(MAN_TEXT.replace("DESCRIPTION", "Description")) == lead_baseline(MAN_TEXT)


def test_lead_baseline_plain_texts():
    assert lead_baseline("OVERVIEW\n\nRETURN VALUE\nFirst one. Second one.") == "First one."
    assert lead_baseline("No headings here. More.") == "No headings here."
    assert lead_baseline("O_RDONLY is a flag.") == "O_RDONLY is a flag."  # a sentence, not a title
    assert lead_baseline("DESCRIPTION\n") == "" and lead_baseline("") == ""
