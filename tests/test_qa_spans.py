"""Span decoding: the same answers as transformers 4.57's question-answering pipeline, on its own
logits (exactly, scores included) and on the logits our transformers 5 copy of the same weights
gives for a padded batch of windows; plus the rules checked one by one on crafted logits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import transformers

from longdoc.data.qa_spans import best_answers
from longdoc.data.qa_windows import batch_inputs, question_answer_windows
from qa_pipeline_oracle_runs import QUESTIONS, SETTINGS, cases, checkpoint, contexts, oracle_run


def setting_id(settings: dict) -> str:
    return "k{top_k}-len{max_answer_len}-null{handle_impossible_answer:d}-words{align_to_words:d}".format(**settings)


def windows_and_logits(kind, max_length, doc_stride):
    oracle = oracle_run(kind, max_length, doc_stride)
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint(kind))
    windows = question_answer_windows(tokenizer, QUESTIONS, contexts(), max_length, doc_stride)
    theirs = [w for example in oracle["windows"] for w in example]
    starts = [np.asarray(w["start_logits"], dtype=np.float32) for w in theirs]
    ends = [np.asarray(w["end_logits"], dtype=np.float32) for w in theirs]
    return oracle, tokenizer, windows, starts, ends


@pytest.mark.parametrize("kind,max_length,doc_stride", cases())
def test_answers_on_the_pipelines_logits_are_the_pipelines(kind, max_length, doc_stride):
    oracle, _, windows, starts, ends = windows_and_logits(kind, max_length, doc_stride)
    texts = contexts()
    first_answers = []
    for settings, expected in zip(SETTINGS, oracle["answers"]):
        ours = best_answers(starts, ends, windows, texts, **settings)
        for example, (mine, theirs) in enumerate(zip(ours, expected)):
            assert mine == theirs, f"{setting_id(settings)} pair {example}"
            for answer in mine:
                assert texts[example][answer["start"]:answer["end"]] == answer["answer"]
            if settings["handle_impossible_answer"]:
                first_answers.append(mine[0]["answer"])
    if kind == "bert-no-answer":  # "no answer" wins for some pairs, not all
        assert "" in first_answers and set(first_answers) != {""}


@pytest.mark.parametrize("kind,max_length,doc_stride", cases())
def test_answers_from_our_batched_logits_match_the_pipeline(kind, max_length, doc_stride):
    """Our side runs the transformers 5 model of the same folder over a padded batch of all windows."""
    oracle, tokenizer, windows, _, _ = windows_and_logits(kind, max_length, doc_stride)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(checkpoint(kind)).eval()
    batch = batch_inputs(windows, tokenizer.pad_token_id, tokenizer.model_input_names)
    assert len({len(w) for w in windows}) > 1  # padding inside the batch
    with torch.no_grad():
        output = model(**{name: torch.from_numpy(values) for name, values in batch.items()})
    starts, ends = output.start_logits.numpy(), output.end_logits.numpy()
    texts = contexts()
    for settings, expected in zip(SETTINGS, oracle["answers"]):
        ours = best_answers(starts, ends, windows, texts, **settings)
        for example, (mine, theirs) in enumerate(zip(ours, expected)):
            where = f"{setting_id(settings)} pair {example}"
            assert [(a["answer"], a["start"], a["end"]) for a in mine] == \
                   [(a["answer"], a["start"], a["end"]) for a in theirs], where
            np.testing.assert_allclose([a["score"] for a in mine], [a["score"] for a in theirs], rtol=1e-4,
                                       err_msg=where)


# crafted windows: one context of whole words split into word pieces by the MiniLM tokenizer

CONTEXT = ("The checksumming parser rereads the manifest. Unbuffered sockets stream packets to the handler; "
           "the registry recompiles every module at release time.")


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(checkpoint("bert"))


def crafted(tokenizer, question="what does the parser read?", max_length=24, doc_stride=6):
    windows = question_answer_windows(tokenizer, [question], [CONTEXT], max_length, doc_stride)
    rng = np.random.default_rng(0)
    starts = [rng.normal(size=len(w)).astype(np.float32) for w in windows]
    ends = [rng.normal(size=len(w)).astype(np.float32) for w in windows]
    return windows, starts, ends


def position_of(window, text: str, piece: int = 0) -> int:
    """Index of the `piece`-th token of the word `text` in the window (which must hold it)."""
    begin = CONTEXT.index(text)
    tokens = [i for i, (a, b) in enumerate(window.offset_mapping)
              if window.word_ids[i] >= 0 and begin <= a < begin + len(text)]
    return tokens[piece]


def softmax(row, allowed):
    row = np.where(allowed, row.astype(np.float64), -np.inf)
    row = np.exp(row - row.max())
    return row / row.sum()


def test_top_spans_are_those_of_a_brute_force_search(tokenizer):
    """Every span of one window scored by a plain double loop; top_k=8 without word alignment."""
    windows, starts, ends = crafted(tokenizer, max_length=64, doc_stride=8)
    assert len(windows) == 1
    (window,) = windows
    allowed = np.asarray(window.p_mask) == 0
    for max_answer_len in (1, 3, 50):
        p_start, p_end = softmax(starts[0], allowed), softmax(ends[0], allowed)
        spans = []
        for s, e in itertools.product(range(1, len(window)), repeat=2):  # position 0 (CLS) never answers
            if allowed[s] and allowed[e] and s <= e < s + max_answer_len:
                spans.append((p_start[s] * p_end[e], window.offset_mapping[s][0], window.offset_mapping[e][1]))
        spans.sort(reverse=True)
        expected = []
        for score, begin, end in spans[:8]:  # the window's 8 best spans; equal texts (any case) add up
            same = [a for a in expected if a[0].lower() == CONTEXT[begin:end].lower()]
            if same:
                same[0][3] += score
            else:
                expected.append([CONTEXT[begin:end], begin, end, score])
        expected.sort(key=lambda a: -a[3])
        ours = best_answers(starts, ends, windows, [CONTEXT], top_k=8, max_answer_len=max_answer_len,
                            align_to_words=False)[0]
        assert [(a["answer"], a["start"], a["end"]) for a in ours] == [tuple(e[:3]) for e in expected[:8]]
        np.testing.assert_allclose([a["score"] for a in ours], [e[3] for e in expected[:8]], rtol=1e-5)


def test_no_answer_scores_the_smallest_cls_probability_over_windows(tokenizer):
    windows, starts, ends = crafted(tokenizer)
    assert len(windows) >= 3
    starts[1][0] = ends[1][0] = 8.0  # window 1 is sure there is no answer; the others are not
    nulls = [softmax(s, np.asarray(w.p_mask) == 0)[0] * softmax(e, np.asarray(w.p_mask) == 0)[0]
             for w, s, e in zip(windows, starts, ends)]
    answers = best_answers(starts, ends, windows, [CONTEXT], top_k=1000, handle_impossible_answer=True)[0]
    empty = [a for a in answers if a["answer"] == ""]
    assert len(empty) == 1 and (empty[0]["start"], empty[0]["end"]) == (0, 0)
    assert empty[0]["score"] == pytest.approx(min(nulls), rel=1e-5)
    assert empty[0] is not answers[0]  # the smallest, not window 1's confident "no answer"
    without = best_answers(starts, ends, windows, [CONTEXT], top_k=1000)[0]
    assert "" not in [a["answer"] for a in without]
    starts = [s.copy() for s in starts]
    ends = [e.copy() for e in ends]
    for s, e in zip(starts, ends):
        s[0] = e[0] = 9.0  # every window sure: "no answer" wins
    assert best_answers(starts, ends, windows, [CONTEXT], handle_impossible_answer=True)[0][0]["answer"] == ""


def test_the_same_answer_in_overlapping_windows_adds_its_scores(tokenizer):
    windows, starts, ends = crafted(tokenizer)
    holding = [i for i, w in enumerate(windows)
               if any(CONTEXT[a:b] == "manifest" for (a, b), word in zip(w.offset_mapping, w.word_ids) if word >= 0)]
    assert len(holding) == 2  # the word sits in the overlap of two windows
    for i in holding:
        position = position_of(windows[i], "manifest")
        starts[i][position] = ends[i][position] = 6.0
    probabilities = []
    for i in holding:
        allowed = np.asarray(windows[i].p_mask) == 0
        position = position_of(windows[i], "manifest")
        p_start, p_end = softmax(starts[i], allowed), softmax(ends[i], allowed)
        probabilities.append(p_start[position] * p_end[position])
    best = best_answers(starts, ends, windows, [CONTEXT])[0][0]
    assert best["answer"] == "manifest" and CONTEXT[best["start"]:best["end"]] == "manifest"
    assert best["score"] == pytest.approx(sum(probabilities), rel=1e-5)


def test_align_to_words_widens_a_piece_to_its_word(tokenizer):
    windows, starts, ends = crafted(tokenizer, max_length=64)
    (window,) = windows
    piece = position_of(window, "checksumming", 1)  # a piece inside the word
    assert window.word_ids[piece] == window.word_ids[piece - 1]
    starts[0][piece] = ends[0][piece] = 9.0
    aligned = best_answers(starts, ends, windows, [CONTEXT], align_to_words=True)[0][0]
    raw = best_answers(starts, ends, windows, [CONTEXT], align_to_words=False)[0][0]
    assert aligned["answer"] == "checksumming"
    begin, end = window.offset_mapping[piece]
    assert (raw["answer"], raw["start"], raw["end"]) == (CONTEXT[begin:end], begin, end)
    assert raw["answer"] != "checksumming" and raw["answer"] in "checksumming"


def test_spans_longer_than_max_answer_len_are_never_answers(tokenizer):
    windows, starts, ends = crafted(tokenizer, max_length=64)
    (window,) = windows
    s, e = position_of(window, "Unbuffered"), position_of(window, "handler")
    starts[0][s] = ends[0][e] = 12.0
    span = e - s + 1
    assert best_answers(starts, ends, windows, [CONTEXT], max_answer_len=span)[0][0]["answer"] == \
        CONTEXT[CONTEXT.index("Unbuffered"):CONTEXT.index("handler") + len("handler")]
    for answer in best_answers(starts, ends, windows, [CONTEXT], top_k=20, max_answer_len=span - 1,
                               align_to_words=False)[0]:
        assert not (answer["start"] == window.offset_mapping[s][0] and answer["end"] == window.offset_mapping[e][1])


def test_bad_arguments_say_what_to_give(tokenizer):
    windows, starts, ends = crafted(tokenizer)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        best_answers(starts, ends, windows, [CONTEXT], top_k=0)
    with pytest.raises(ValueError, match="max_answer_len must be at least 1"):
        best_answers(starts, ends, windows, [CONTEXT], max_answer_len=0)
    with pytest.raises(ValueError, match="give one row of each per window"):
        best_answers(starts[:-1], ends, windows, [CONTEXT])
    with pytest.raises(ValueError, match="give the logits of the whole window"):
        best_answers([s[:5] for s in starts], ends, windows, [CONTEXT])
    with pytest.raises(ValueError, match="pass the contexts the windows were made from"):
        best_answers(starts, ends, windows, [])


def test_a_short_context_gives_only_answers_of_non_zero_probability(tokenizer):
    """The pipeline pads a window's top-k with zero-probability spans (often empty text); here a
    context of a few tokens gives each of its spans once and nothing more."""
    windows = question_answer_windows(tokenizer, ["what?"], ["Unbuffered sockets"], 32, 4)
    (window,) = windows
    assert sum(word >= 0 for word in window.word_ids) > 2  # word pieces: a few context tokens
    rng = np.random.default_rng(1)
    starts, ends = [rng.normal(size=len(window)).astype(np.float32)], [rng.normal(size=len(window)).astype(np.float32)]
    answers = best_answers(starts, ends, windows, ["Unbuffered sockets"], top_k=50, max_answer_len=50,
                           align_to_words=False)[0]
    context_tokens = sum(word >= 0 for word in window.word_ids)
    assert len(answers) == context_tokens * (context_tokens + 1) // 2  # every span s <= e, none twice
    assert all(a["score"] > 0 and a["answer"] for a in answers)
