"""Answers from a QA model's start/end logits over the windows of `qa_windows`, decoded by the rules
of transformers' question-answering pipeline (4.57):

- per window, tokens that cannot answer (p_mask, padding) get logit -10000 and both logit rows
  become probabilities (softmax, float32); the CLS position (index 0) then gets probability 0, and
  its start x end probability before that is the window's "no answer" score;
- a span (s, e) scores p_start[s] * p_end[e] for s <= e < s + max_answer_len; each window keeps its
  best `top_k` spans (`2 * top_k + 10` when spans are widened to whole words, since several spans
  then give the same text);
- spans become character ranges of the context (whole words of the tokenizer when align_to_words);
  the same text found again (any case) adds its score to the first occurrence;
- with handle_impossible_answer the empty answer scores the smallest "no answer" score over the
  windows; answers sort by score and the first top_k are kept.

One difference: the pipeline fills a window's top-k with spans of probability 0 (empty or
meaningless text) when the window has fewer candidate spans than that; they are left out here, so
a very short context can give fewer than top_k answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from .qa_windows import QAWindow

MASKED_LOGIT = -10000.0
NO_ANSWER_START = 1_000_000.0  # larger than any probability: the min over windows starts here


def best_answers(start_logits: Sequence, end_logits: Sequence, windows: Sequence["QAWindow"],
                 contexts: Sequence[str], top_k: int = 1, max_answer_len: int = 15,
                 handle_impossible_answer: bool = False, align_to_words: bool = True) -> list[list[dict]]:
    """For each context, up to top_k answers {answer, score, start, end}, best first, with
    context[start:end] == answer ("" at 0:0 is "no answer"). start_logits / end_logits: one row per
    window (a padded 2-D array or a list of 1-D arrays; positions past a window's length are ignored)."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1 (got {top_k})")
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len must be at least 1 (got {max_answer_len})")
    if not len(start_logits) == len(end_logits) == len(windows):
        raise ValueError(f"{len(start_logits)} start and {len(end_logits)} end logit rows for {len(windows)} windows: "
                         f"give one row of each per window")
    per_window = 2 * top_k + 10 if align_to_words else top_k
    answers: list[list[dict]] = [[] for _ in contexts]
    no_answer = [NO_ANSWER_START] * len(contexts)
    for window, start_row, end_row in zip(windows, start_logits, end_logits):
        if not 0 <= window.example < len(contexts):
            raise ValueError(f"a window belongs to pair {window.example} but there are {len(contexts)} contexts: "
                             f"pass the contexts the windows were made from")
        length = len(window)
        if len(start_row) < length or len(end_row) < length:
            raise ValueError(f"logit rows of {len(start_row)} / {len(end_row)} positions for a window of {length} "
                             f"tokens: give the logits of the whole window")
        start_p, end_p = _probabilities(np.asarray(start_row)[:length], np.asarray(end_row)[:length], window)
        no_answer[window.example] = min(no_answer[window.example], float(start_p[0] * end_p[0]))
        start_p[0] = end_p[0] = 0.0
        context = contexts[window.example]
        for s, e, score in _top_spans(start_p, end_p, max_answer_len, per_window):
            begin, end = _characters(window, s, e, align_to_words)
            _add(answers[window.example], context[begin:end], begin, end, score)
    results = []
    for example_answers, null_score in zip(answers, no_answer):
        if handle_impossible_answer:
            example_answers.append({"answer": "", "score": null_score, "start": 0, "end": 0})
        results.append(sorted(example_answers, key=lambda a: a["score"], reverse=True)[:top_k])
    return results


def _probabilities(start: np.ndarray, end: np.ndarray, window) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of each row over the positions that may answer (context and CLS), in float32."""
    blocked = (np.asarray(window.p_mask) != 0) | (np.asarray(window.attention_mask) == 0)

    def softmax(row):
        row = np.where(blocked, np.float32(MASKED_LOGIT), row.astype(np.float32))
        row = np.exp(row - row.max())
        return row / row.sum()

    return softmax(start), softmax(end)


def _top_spans(start_p: np.ndarray, end_p: np.ndarray, max_answer_len: int, count: int):
    """The `count` best spans of non-zero probability as (start, end, score), best first.
    band[s, k] scores the span from s to s + k (k < max_answer_len)."""
    length = len(start_p)
    width = min(max_answer_len, length)
    ends = np.arange(length)[:, None] + np.arange(width)[None, :]
    inside = ends < length
    band = start_p[:, None] * np.where(inside, end_p[np.minimum(ends, length - 1)], np.float32(0))
    flat = band.ravel()
    candidates = np.flatnonzero(flat > 0)
    if len(candidates) > count:
        candidates = candidates[np.argpartition(-flat[candidates], count - 1)[:count]]
    candidates = candidates[np.argsort(-flat[candidates], kind="stable")]
    starts, offsets = np.divmod(candidates, width)
    return [(int(s), int(s + k), float(flat[i])) for s, k, i in zip(starts, offsets, candidates)]


def _characters(window, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
    """Character range of tokens s..e; with align_to_words, from the start of s's word to the end
    of e's word (word pieces of a word inside this window)."""
    offsets = window.offset_mapping
    if align_to_words and window.word_ids[s] >= 0 and window.word_ids[e] >= 0:
        words = np.asarray(window.word_ids)
        first = int(np.argmax(words == words[s]))
        last = len(words) - 1 - int(np.argmax(words[::-1] == words[e]))
        return offsets[first][0], offsets[last][1]
    return offsets[s][0], offsets[e][1]


def _add(answers: list[dict], text: str, begin: int, end: int, score: float) -> None:
    """A text found again adds its score to the first answer with the same text (ignoring case)."""
    for answer in answers:
        if answer["answer"].lower() == text.lower():
            answer["score"] += score
            return
    answers.append({"answer": text, "score": score, "start": begin, "end": end})
