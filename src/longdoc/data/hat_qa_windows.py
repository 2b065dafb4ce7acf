"""HAT question answering over contexts longer than one HAT input: windows of `hat_qa` inputs.

A HAT reads at most `max_segments` segments, each the pair encoding of (question, context chunk)
(`data/hat_qa.py`). A longer context is cut into overlapping pieces that each fill one HAT input,
`doc_stride` context tokens shared by consecutive pieces (a piece starts at a word's first token),
as the sequence families' windows share tokens.

Each window also has a `view`: a `QAWindow` of the first segment's [CLS] followed by the window's
context tokens in order, with character offsets into the whole context. The model's logits,
gathered at those positions (`view_logits`), decode with `qa_spans.best_answers` exactly as a
Longformer window's do: the same softmax over context + CLS, the same "no answer" at CLS, and an
answer length counted in context tokens even where an answer runs across two segments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .hat_qa import NO_ANSWER, HATQAInput, hat_qa_input, pair_template
from .qa_windows import QAWindow, default_doc_stride

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HATWindow:
    """One HAT input of a question with one piece of its context."""

    example: int  # index of the (question, context) pair
    inputs: HATQAInput  # what the model reads (offsets relative to the piece)
    view: QAWindow  # [CLS] + the piece's context tokens, offsets into the whole context
    piece_start: int  # characters of the context before the piece
    start_position: int | None = None  # training labels: flat positions in `inputs` (0: no answer here)
    end_position: int | None = None

    def __len__(self) -> int:
        return len(self.inputs.input_ids)

    @property
    def gather(self) -> list[int]:
        """Flat positions of the view's tokens in the model's input: CLS, then the context tokens."""
        return [0, *self.inputs.context_positions]


def context_room(tokenizer, question: str, segment_size: int) -> int:
    """Context tokens a segment holds beside the question and the pair's special tokens."""
    specials = pair_template(tokenizer).special_count
    length = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = segment_size - specials - length
    if room < 1:
        raise ValueError(f"the question {question[:60]!r} is {length} tokens long: with {specials} special tokens it "
                         f"leaves no room for context in HAT segments of {segment_size} tokens (max_sentence_size); "
                         f"shorten it to at most {segment_size - specials - 1} tokens, or use a model with longer "
                         f"segments")
    return room


def hat_windows(tokenizer, questions: Sequence[str], contexts: Sequence[str], segment_size: int, max_segments: int,
                doc_stride: int | None = None) -> list[HATWindow]:
    """HAT windows of every (question, context) pair, in order of the pairs. doc_stride: context tokens
    shared by consecutive windows of a context (default: default_doc_stride of a window's context)."""
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts: give one context per question")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is a slow (Python) tokenizer: question answering needs "
                         f"character offsets, which only fast tokenizers give; load a fast one "
                         f"(AutoTokenizer.from_pretrained(..., use_fast=True), or a folder with tokenizer.json)")
    windows = []
    for example, (question, context) in enumerate(zip(questions, contexts)):
        if not question or not question.strip():
            raise ValueError(f"question {example} is empty: every pair needs a question")
        if not context:
            raise ValueError(f"context {example} is empty: every pair needs a context to answer from")
        capacity = context_room(tokenizer, question, segment_size) * max_segments
        stride = min(default_doc_stride(capacity), capacity - 1) if doc_stride is None else doc_stride
        if not 0 <= stride < capacity:
            raise ValueError(f"doc_stride ({stride}) must be at least 0 and smaller than the {capacity} context "
                             f"tokens a HAT window holds ({max_segments} segments beside the question); try "
                             f"{default_doc_stride(capacity)}")
        for piece_start, piece_end in _pieces(tokenizer, context, capacity, stride):
            inputs = hat_qa_input(question, context[piece_start:piece_end], tokenizer, segment_size, max_segments,
                                  truncate=True)
            windows.append(HATWindow(example, inputs, _view(tokenizer, inputs, context, piece_start, piece_end,
                                                            example), piece_start))
    return windows


def _pieces(tokenizer, context: str, capacity: int, stride: int) -> list[tuple[int, int]]:
    """Character ranges of the context pieces: `capacity` tokens each, consecutive ones sharing `stride`
    tokens (more where a piece is moved back to the start of its first word)."""
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets, words = encoded["offset_mapping"], encoded.word_ids()
    if len(offsets) <= capacity:
        return [(0, len(context))]
    pieces, first = [], 0
    while True:
        last = min(first + capacity, len(offsets)) - 1
        pieces.append((offsets[first][0] if pieces else 0, len(context) if last == len(offsets) - 1
                       else offsets[last][1]))
        if last == len(offsets) - 1:
            return pieces
        following = max(last + 1 - stride, first + 1)
        while following > first + 1 and words[following] is not None and words[following] == words[following - 1]:
            following -= 1  # start at the first token of a word: the piece tokenizes as the context does
        first = following


def _view(tokenizer, inputs: HATQAInput, context: str, piece_start: int, piece_end: int, example: int) -> QAWindow:
    kept = len(inputs.context_positions)
    piece = tokenizer(context[piece_start:piece_end], add_special_tokens=False, verbose=False)
    word_ids = [-1 if w is None else w for w in piece.word_ids()[:kept]]
    offsets = [(0, 0)] + [(inputs.offset_mapping[p][0] + piece_start, inputs.offset_mapping[p][1] + piece_start)
                          for p in inputs.context_positions]
    usable = [0] + [1 - inputs.answer_mask[p] for p in inputs.context_positions]  # p_mask: 1 = cannot answer
    return QAWindow(example=example, input_ids=[inputs.input_ids[0], *(inputs.input_ids[p]
                                                                      for p in inputs.context_positions)],
                    attention_mask=[1] * (kept + 1), token_type_ids=None, offset_mapping=offsets, p_mask=usable,
                    global_attention_mask=[0] * (kept + 1), word_ids=[-1, *word_ids])


def view_logits(window: HATWindow, start_row, end_row) -> tuple[np.ndarray, np.ndarray]:
    """The start and end logits of the view's tokens, from the model's (N' * L,) rows of this window."""
    gather = np.asarray(window.gather)
    return np.asarray(start_row)[gather], np.asarray(end_row)[gather]


def hat_training_windows(tokenizer, records: Sequence, segment_size: int, max_segments: int,
                         doc_stride: int | None = None) -> list[HATWindow]:
    """HAT windows of QA records labelled for training: the flat positions of the first and last context
    tokens of the first answer when the whole answer lies in the window's piece, else (0, 0), the first
    segment's [CLS] (as for unanswerable questions)."""
    records = list(records)
    windows = hat_windows(tokenizer, [r.question for r in records], [r.context for r in records], segment_size,
                          max_segments, doc_stride)
    labelled = []
    for window in windows:
        record = records[window.example]
        start, end = NO_ANSWER
        if record.answers:
            answer = record.answers[0]
            kept = window.view.offset_mapping[1:]
            inside = kept and kept[0][0] <= answer.start and answer.start + len(answer.text) <= kept[-1][1]
            if inside:
                start, end = window.inputs.answer_positions(answer.start - window.piece_start,
                                                            answer.start + len(answer.text) - window.piece_start)
        labelled.append(HATWindow(window.example, window.inputs, window.view, window.piece_start, start, end))
    return labelled
