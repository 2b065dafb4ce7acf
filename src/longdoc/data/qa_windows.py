"""Question/context pairs cut into overlapping model windows, for extractive question answering.

The windows are those of transformers' question-answering pipeline (4.57, the last release that had
one): one pair encoding per question/context with truncation of the context only, `doc_stride`
tokens of overlap between consecutive windows, character offsets, and a p_mask of the tokens that
cannot be part of an answer. Two deliberate differences: the default window is the model's whole
length (not 384), and each window carries a global attention mask on the question (Longformer).

A tokenizer that pads on the left puts the context first (as the pipeline does); the pipeline then
leaves its p_mask all zeros, so the question can be "answered" from itself. Here the p_mask masks
everything but the context in both layouts.

`training_features` labels the same windows with the SQuAD recipe: the first and last context
tokens that cover the answer, or the CLS position when the answer is not inside the window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .documents import DataError

logger = logging.getLogger(__name__)

# model types whose position ids start after the padding index (RoBERTa's scheme)
PADDING_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "data2vec-text"}
UNBOUNDED_TOKENIZER = 10**6  # tokenizers without a known limit report int(1e30)


@dataclass(frozen=True)
class QAWindow:
    """One model input: a question with one stretch of its context.

    p_mask: 1 where a token cannot be part of an answer (question, special tokens), 0 on the
    context and on the CLS token (the "no answer" position). word_ids: the tokenizer's word index of
    each context token within the context, -1 elsewhere (used to widen spans to whole words).
    """

    example: int
    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int] | None
    offset_mapping: list[tuple[int, int]]
    p_mask: list[int]
    global_attention_mask: list[int]
    word_ids: list[int]
    start_position: int | None = None  # training labels (training_features)
    end_position: int | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def default_max_length(config, tokenizer) -> int:
    """Longest window the model reads: its position table (less RoBERTa-style padding rows), and no
    longer than the tokenizer's model_max_length when that is set."""
    length = getattr(config, "max_tokens", None)  # longdoc's configs know their own limit
    if length is None:
        length = getattr(config, "max_position_embeddings", None)
        if length is not None and getattr(config, "model_type", None) in PADDING_OFFSET_POSITIONS:
            length -= (getattr(config, "pad_token_id", None) or 0) + 1
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit is not None and tokenizer_limit < UNBOUNDED_TOKENIZER:
        length = tokenizer_limit if length is None else min(length, tokenizer_limit)
    if length is None:
        raise ValueError(f"cannot tell how long a window {type(config).__name__} reads (no max_position_embeddings "
                         f"and no tokenizer model_max_length): pass max_length")
    return int(length)


def default_doc_stride(max_length: int) -> int:
    """A quarter of the window, at most 512 tokens: long enough that an answer near a window's edge
    appears whole in the next window, short enough that windows add little repeated work."""
    return min(max_length // 4, 512)


def question_answer_windows(tokenizer, questions: Sequence[str], contexts: Sequence[str], max_length: int,
                            doc_stride: int | None = None) -> list[QAWindow]:
    """Windows of every question/context pair, in order of the pairs (`QAWindow.example` is the
    pair's index). doc_stride: tokens shared by consecutive windows (default_doc_stride when None,
    lowered to fit the longest question)."""
    questions, contexts = list(questions), list(contexts)
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts: give one context per question")
    if not questions:
        return []
    _check_fast(tokenizer)
    for index, (question, context) in enumerate(zip(questions, contexts)):
        if not question or not question.strip():
            raise ValueError(f"question {index} is empty: every pair needs a question")
        if not context:
            raise ValueError(f"context {index} is empty: every pair needs a context to answer from")
    room = _context_room(tokenizer, questions, max_length)
    if doc_stride is None:
        doc_stride = min(default_doc_stride(max_length), room - 1)
    _check_stride(doc_stride, max_length, room)
    question_first = tokenizer.padding_side == "right"
    encoded = tokenizer(
        text=questions if question_first else contexts,
        text_pair=contexts if question_first else questions,
        truncation="only_second" if question_first else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids="token_type_ids" in tokenizer.model_input_names,
        padding=False,
    )
    windows = [_window(tokenizer, encoded, index, question_first) for index in range(len(encoded["input_ids"]))]
    logger.debug("%d question/context pairs -> %d windows of at most %d tokens (stride %d)",
                 len(questions), len(windows), max_length, doc_stride)
    return windows


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is a slow (Python) tokenizer: question answering needs "
                         f"character offsets, which only fast tokenizers give; load a fast one "
                         f"(AutoTokenizer.from_pretrained(..., use_fast=True), or a folder with tokenizer.json)")


def _context_room(tokenizer, questions: list[str], max_length: int) -> int:
    """Context tokens a window holds beside the longest question (and the special tokens)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    longest = int(np.argmax(lengths))
    room = max_length - specials - lengths[longest]
    if room <= 0:
        raise ValueError(
            f"question {longest} is {lengths[longest]} tokens long: with {specials} special tokens it leaves no room "
            f"for context in a window of {max_length} tokens; shorten the question or use a longer window "
            f"(max_length > {lengths[longest] + specials})")
    return room


def _check_stride(doc_stride: int, max_length: int, room: int) -> None:
    if doc_stride < 0:
        raise ValueError(f"doc_stride is {doc_stride}: give the number of overlapping tokens, 0 or more")
    if doc_stride >= max_length:
        raise ValueError(f"doc_stride ({doc_stride}) must be smaller than the window (max_length {max_length}): "
                         f"it is the overlap between consecutive windows; try {default_doc_stride(max_length)}")
    if doc_stride >= room:
        raise ValueError(f"doc_stride ({doc_stride}) must be smaller than the {room} context tokens a window holds "
                         f"beside the longest question: lower doc_stride below {room}, shorten the question or use "
                         f"a longer window")


def _window(tokenizer, encoded, index: int, question_first: bool) -> QAWindow:
    sequence_ids = encoded.sequence_ids(index)
    context_id, question_id = (1, 0) if question_first else (0, 1)
    input_ids = list(encoded["input_ids"][index])
    p_mask = [int(s != context_id) for s in sequence_ids]
    if tokenizer.cls_token_id is not None:  # CLS stays an answer position: "no answer" lives there
        p_mask = [0 if token == tokenizer.cls_token_id else mask for token, mask in zip(input_ids, p_mask)]
    word_ids = [w if s == context_id and w is not None else -1
                for w, s in zip(encoded.word_ids(index), sequence_ids)]
    token_type_ids = encoded.get("token_type_ids")
    return QAWindow(
        example=int(encoded["overflow_to_sample_mapping"][index]),
        input_ids=input_ids,
        attention_mask=list(encoded["attention_mask"][index]),
        token_type_ids=list(token_type_ids[index]) if token_type_ids is not None else None,
        offset_mapping=[tuple(o) for o in encoded["offset_mapping"][index]],
        p_mask=p_mask,
        global_attention_mask=question_global_mask(sequence_ids, question_id),
        word_ids=word_ids,
    )


def question_global_mask(sequence_ids: Sequence[int | None], question_id: int = 0) -> list[int]:
    """1 on the question. Question first: every token before the first separator after it, so the
    leading CLS / <s> is global too ([CLS] q [SEP] c [SEP] and <s> q </s></s> c </s> alike). Question
    second: its own tokens. Read from the pair encoding's sequence ids, not by counting separators."""
    positions = [i for i, s in enumerate(sequence_ids) if s == question_id]
    if not positions:
        raise ValueError("the encoding has no question tokens: encode (question, context) as a pair")
    first = 0 if question_id == 0 else positions[0]
    return [int(first <= i <= positions[-1]) for i in range(len(sequence_ids))]


def batch_inputs(windows: Sequence[QAWindow], pad_token_id: int,
                 names: Sequence[str] = ("input_ids", "attention_mask")) -> dict[str, np.ndarray]:
    """The named fields of the windows as int64 arrays padded on the right to the longest window
    (pad_token_id in input_ids, 0 elsewhere). Names: QAWindow fields, e.g. token_type_ids,
    global_attention_mask, p_mask, start_position, end_position."""
    if not windows:
        raise ValueError("no windows to batch")
    length = max(len(w) for w in windows)
    batch = {}
    for name in names:
        values = [getattr(w, name) for w in windows]
        if any(v is None for v in values):
            raise ValueError(f"some windows have no {name} (the tokenizer gives none, or these are not "
                             f"training_features): leave {name!r} out of names")
        if name in ("start_position", "end_position"):
            batch[name] = np.asarray(values, dtype=np.int64)
            continue
        array = np.full((len(windows), length), pad_token_id if name == "input_ids" else 0, dtype=np.int64)
        for row, value in enumerate(values):
            array[row, :len(value)] = value
        batch[name] = array
    return batch


def training_features(tokenizer, records: Sequence, max_length: int, doc_stride: int | None = None) -> list[QAWindow]:
    """Windows of QA records (`longdoc.data.qa.QARecord`: question, context, answers with text and
    start) labelled for training: start/end_position are the first and last context tokens covering
    the first answer's characters when the whole answer lies inside the window, else both point at
    the CLS token (as for unanswerable questions)."""
    records = list(records)
    for record in records:
        for text, start in map(_answer_fields, record.answers):
            if record.context[start:start + len(text)] != text:
                raise DataError(f"{_where(record)}: answer {text!r} does not start at character {start} of its context "
                                f"(found {record.context[start:start + len(text)]!r}); fix its answer_start")
    windows = question_answer_windows(tokenizer, [r.question for r in records], [r.context for r in records],
                                      max_length, doc_stride)
    return [_labelled(window, records[window.example], tokenizer.cls_token_id) for window in windows]


def _labelled(window: QAWindow, record, cls_token_id: int | None) -> QAWindow:
    cls_index = window.input_ids.index(cls_token_id) if cls_token_id in window.input_ids else 0
    start = end = cls_index
    if record.answers:
        text, answer_start = _answer_fields(record.answers[0])
        answer_end = answer_start + len(text)
        context = [i for i, w in enumerate(window.word_ids) if w >= 0]
        covering = [i for i in context
                    if window.offset_mapping[i][1] > answer_start and window.offset_mapping[i][0] < answer_end]
        inside = (window.offset_mapping[context[0]][0] <= answer_start
                  and window.offset_mapping[context[-1]][1] >= answer_end)
        if inside and covering:
            start, end = covering[0], covering[-1]
    return replace(window, start_position=start, end_position=end)


def _answer_fields(answer) -> tuple[str, int]:
    if hasattr(answer, "text"):
        return answer.text, answer.start
    text, start = answer
    return text, start


def _where(record) -> str:
    return getattr(record, "source", None) or f"record {getattr(record, 'id', '?')}"
