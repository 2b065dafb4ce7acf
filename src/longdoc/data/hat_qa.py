"""HAT inputs for extractive question answering, and the way back from its logits to the context.

A HAT's segments meet only through their first tokens (the cross-segment encoder): a question
read once, in the first segment, would reach the tokens of the other segments only as part of a
segment summary. So every segment carries the question: each is the tokenizer's own pair encoding
of (question, context chunk), `[CLS] question [SEP] chunk [SEP]` for BERT-like tokenizers
(`<s> question </s></s> chunk </s>` for RoBERTa-like ones), padded to the model's
`max_sentence_size`. The context is tokenized once, with character offsets, and cut into
consecutive chunks of what room the question leaves; an answer may run over two chunks (its
start and end tokens are then in different segments, which the span search allows).

`HATForQuestionAnswering` gives a start and an end logit per token of the flat (N * L) input;
`best_answer_span` keeps the context tokens, pairs starts and ends at most `max_answer_tokens`
context tokens apart and returns the best pair as characters of the context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

NO_ANSWER = (0, 0)  # the first segment's [CLS]: the target of a question without an answer in the kept context


@dataclass(frozen=True)
class PairTemplate:
    """The special tokens a tokenizer puts around a pair (prefix q middle c suffix), with token types."""

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    prefix_types: list[int]
    middle_types: list[int]
    suffix_types: list[int]
    question_type: int
    context_type: int

    @property
    def special_count(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def pair_template(tokenizer: PreTrainedTokenizerBase) -> PairTemplate:
    """Read the pair template off the tokenizer's own output for a probe pair."""
    for probe in ("longdoc", "a", tokenizer.unk_token or ""):
        plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
        if not plain:  # a tiny vocabulary may drop the probe: try another
            continue
        full = tokenizer(probe, probe, add_special_tokens=True, return_token_type_ids=True)
        ids, n = full["input_ids"], len(plain)
        types = full.get("token_type_ids") or [0] * len(ids)
        starts = [i for i in range(len(ids) - n + 1) if ids[i:i + n] == plain]
        pairs = [(a, b) for a in starts for b in starts if b >= a + n]
        if not pairs:
            continue
        first, second = pairs[0]
        template = PairTemplate(ids[:first], ids[first + n:second], ids[second + n:], types[:first],
                                types[first + n:second], types[second + n:], types[first], types[second])
        if not template.prefix:
            raise ValueError(
                f"{type(tokenizer).__name__} puts no token before the question of a pair: a HAT segment must start "
                f"with its [CLS]/<s> (the token the cross-segment encoder reads); use the model's own tokenizer"
            )
        return template
    raise ValueError(f"cannot tell the pair template of {type(tokenizer).__name__} from its output on a probe pair")


@dataclass(frozen=True)
class HATQAInput:
    """One (question, context) as HAT input: `num_segments` segments of `segment_size` tokens, flat.

    `offset_mapping[p]` is the [start, end) characters in the context of the token at flat position p,
    None for the question, special tokens and padding; `answer_mask[p]` is 1 where an answer may start
    or end (context tokens with characters). `context_positions` lists the flat position of every kept
    context token in context order; `cut_tokens` counts the context tokens left out by `truncate`.
    """

    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int]
    num_segments: int
    segment_size: int
    question_tokens: int
    offset_mapping: list[tuple[int, int] | None]
    answer_mask: list[int]
    context_positions: list[int]
    cut_tokens: int = 0

    def answer_positions(self, start_char: int, end_char: int) -> tuple[int, int]:
        """Flat (start, end) token positions of the answer at characters [start_char, end_char) of the
        context: its first and last overlapping context tokens; NO_ANSWER (0, 0) when none is kept."""
        if end_char <= start_char:
            raise ValueError(f"answer characters [{start_char}, {end_char}) are empty: give end > start")
        inside = [p for p in self.context_positions
                  if self.answer_mask[p] and self.offset_mapping[p][1] > start_char and self.offset_mapping[p][0] < end_char]
        return (inside[0], inside[-1]) if inside else NO_ANSWER


class AnswerSpan(NamedTuple):
    start: int  # characters of the context, [start, end)
    end: int
    score: float  # start logit + end logit
    null_score: float  # the same at NO_ANSWER: a better null score says "no answer" (SQuAD 2.0 style)


def _room(template: PairTemplate, question_tokens: int, segment_size: int) -> int:
    room = segment_size - template.special_count - question_tokens
    if room < 1:
        most = segment_size - template.special_count - 1
        raise ValueError(
            f"the question has {question_tokens} tokens: with the {template.special_count} special tokens of a pair "
            f"it leaves no room for context in segments of {segment_size} tokens (max_sentence_size); shorten the "
            f"question to at most {most} tokens, or use a model with longer segments"
        )
    return room


def hat_qa_input(
    question: str,
    context: str,
    tokenizer: PreTrainedTokenizerBase,
    segment_size: int,
    max_segments: int,
    truncate: bool = False,
) -> HATQAInput:
    """(question, context) as HAT segments `[CLS] question [SEP] chunk [SEP]` (the tokenizer's pair
    template), `segment_size` tokens each, at most `max_segments` of them (more raise ValueError, or with
    `truncate=True` keep the first ones and log how much context was left out)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} gives no character offsets: load the fast tokenizer "
                         f"(AutoTokenizer.from_pretrained(..., use_fast=True)) to map answers to the context")
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    template = pair_template(tokenizer)
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    room = _room(template, len(question_ids), segment_size)
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    context_ids, offsets = encoded["input_ids"], [tuple(o) for o in encoded["offset_mapping"]]
    chunks = [(start, min(start + room, len(context_ids))) for start in range(0, len(context_ids), room)] or [(0, 0)]
    if len(chunks) > max_segments:
        if not truncate:
            raise ValueError(
                f"the context needs {len(chunks)} segments of {segment_size} tokens (each with the {len(question_ids)}-"
                f"token question) but the model reads at most {max_segments} (max_sentences): pass truncate=True to "
                f"keep the first {max_segments}, or use a model with more segments"
            )
        logger.warning("context of %d tokens needs %d segments, the model reads %d: kept the first %d tokens",
                       len(context_ids), len(chunks), max_segments, chunks[max_segments - 1][1])
        chunks = chunks[:max_segments]
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError(f"{type(tokenizer).__name__} has no pad_token to fill HAT segments with: set one")
    input_ids, types, attention_mask, offset_mapping, positions = [], [], [], [], []
    before = len(template.prefix) + len(question_ids) + len(template.middle)  # context starts here in a segment
    for start, stop in chunks:
        segment = [*template.prefix, *question_ids, *template.middle, *context_ids[start:stop], *template.suffix]
        positions += range(len(input_ids) + before, len(input_ids) + before + stop - start)
        padding = segment_size - len(segment)
        input_ids += segment + [pad] * padding
        attention_mask += [1] * len(segment) + [0] * padding
        types += [*template.prefix_types, *[template.question_type] * len(question_ids), *template.middle_types,
                  *[template.context_type] * (stop - start), *template.suffix_types] + [0] * padding
        offset_mapping += [None] * before + offsets[start:stop] + [None] * (len(template.suffix) + padding)
    answer_mask = [int(o is not None and o[1] > o[0]) for o in offset_mapping]
    return HATQAInput(input_ids, attention_mask, types, len(chunks), segment_size, len(question_ids),
                      offset_mapping, answer_mask, positions, cut_tokens=len(context_ids) - chunks[-1][1])


def batch_hat_qa(inputs: Sequence[HATQAInput], pad_token_id: int, num_segments: int | None = None
                 ) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask / token_type_ids (B, N * L) long tensors, N = `num_segments` or the
    batch's most; a shorter input is padded with empty segments (all pad, mask 0), as HAT expects."""
    if not inputs:
        raise ValueError("batch_hat_qa needs at least one input")
    sizes = {item.segment_size for item in inputs}
    if len(sizes) > 1:
        raise ValueError(f"inputs were built with different segment sizes {sorted(sizes)}: use one per batch")
    (size,) = sizes
    most = max(item.num_segments for item in inputs)
    total = most if num_segments is None else num_segments
    if most > total:
        raise ValueError(f"an input has {most} segments but num_segments={total}: pass a larger num_segments")
    batch = {"input_ids": torch.full((len(inputs), total * size), pad_token_id, dtype=torch.long),
             "attention_mask": torch.zeros((len(inputs), total * size), dtype=torch.long),
             "token_type_ids": torch.zeros((len(inputs), total * size), dtype=torch.long)}
    for row, item in enumerate(inputs):
        for name, tensor in batch.items():
            values = getattr(item, name)
            tensor[row, :len(values)] = torch.tensor(values, dtype=torch.long)
    return batch


def best_answer_span(start_logits: torch.Tensor, end_logits: torch.Tensor, item: HATQAInput,
                     max_answer_tokens: int = 30) -> AnswerSpan | None:
    """The best context span of one input's logits ((N' * L,) for N' >= its segments: a padded batch row
    does): the start and end context tokens, at most `max_answer_tokens` context tokens apart, of the
    highest start + end logit, as characters of the context. None when no context token can be an answer."""
    if max_answer_tokens < 1:
        raise ValueError(f"max_answer_tokens must be at least 1, got {max_answer_tokens}")
    if start_logits.dim() != 1 or start_logits.shape != end_logits.shape:
        raise ValueError(f"give one input's start and end logits, each (tokens,); got {tuple(start_logits.shape)} "
                         f"and {tuple(end_logits.shape)}")
    if start_logits.shape[0] < len(item.input_ids):
        raise ValueError(f"the logits cover {start_logits.shape[0]} tokens but the input has {len(item.input_ids)}")
    positions = torch.tensor(item.context_positions, dtype=torch.long)
    usable = torch.tensor([item.answer_mask[p] for p in item.context_positions], dtype=torch.bool)
    null_score = float(start_logits[0] + end_logits[0])
    if not bool(usable.any()):
        return None
    starts = start_logits.detach().float()[positions].masked_fill(~usable, float("-inf"))  # (n,) in context order
    ends = end_logits.detach().float()[positions].masked_fill(~usable, float("-inf"))
    n, width = len(positions), min(max_answer_tokens, len(positions))
    # scores[i, d]: start at context token i, end at i + d
    padded_ends = torch.cat([ends, torch.full((width - 1,), float("-inf"))])
    scores = starts[:, None] + padded_ends.unfold(0, width, 1)[:n]  # (n, width)
    best = int(scores.argmax())
    first, last = best // width, best // width + best % width
    start_char = item.offset_mapping[item.context_positions[first]][0]
    end_char = item.offset_mapping[item.context_positions[last]][1]
    return AnswerSpan(start_char, end_char, float(scores.flatten()[best]), null_score)
