"""Cutting a document into the fixed-size segments a HAT (hierarchical attention transformer) reads.

HAT reads N segments of exactly `segment_size` tokens (its config's `max_sentence_size`), at most
`max_segments` of them (`max_sentences`), as one flat input of N * segment_size tokens. Each
segment is `[CLS] + up to segment_size - 1 tokens + padding`; the CLS id comes from the tokenizer
(`cls_token_id`, else `bos_token_id` for RoBERTa-like ones): no id is hard-coded. A segment that
only pads a document up to the batch's N is all pad ids with attention mask 0, CLS slot included.

Three ways to fill the segments (`segment_document`):

* `greedy` (default): sentences (`longdoc.data.sentences`) are packed into a segment while they fit;
  a sentence longer than a segment goes on over the next ones, so no token is lost (the reference
  HAT tokenizer drops the rest of such a sentence).
* `uniform`: the document's tokens cut into consecutive chunks of segment_size - 1.
* pre-segmented: a list of strings (sentences, paragraphs), one segment each, so that labels per
  segment stay aligned; a unit too long for a segment is truncated and the cut is counted.

The document is tokenized once, as a whole, with character offsets; sentences get their tokens by
offset, so the tokens read are those of the whole-text tokenization. Only a tokenizer without
offsets (a slow one) falls back to tokenizing each sentence on its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from .segmentation import special_tokens
from .sentences import sentence_token_ranges, split_sentences  # noqa: F401  (split_sentences: re-exported)

STRATEGIES = ("greedy", "uniform", "units")

@dataclass(frozen=True)
class HATSegments:
    """One document as HAT input: `num_segments` segments of `segment_size` tokens, flat.

    `char_spans[i]` is the [start, end) characters of segment i's text in the document; for
    pre-segmented input it is the index span (i, i + 1) into the list of units instead, and (0, 0)
    for the CLS-only segment of an empty document. `tokens` counts the document tokens placed in
    the segments (CLS and padding excluded); `cut_segments` / `cut_tokens` what was left out
    (segments beyond `max_segments` with `truncate=True`, tokens of units truncated to fit).
    """

    input_ids: list[int]  # num_segments * segment_size
    attention_mask: list[int]  # same length: 1 on CLS and tokens, 0 on padding
    num_segments: int
    char_spans: list[tuple[int, int]]
    cut_segments: int = 0
    cut_tokens: int = 0
    tokens: int = 0

    @property
    def segment_size(self) -> int:
        return len(self.input_ids) // self.num_segments


# --- tokens --------------------------------------------------------------------------------------


@dataclass
class _Tokens:
    """A document's tokens (no special tokens) with what places them in the text."""

    ids: list[int]
    spans: list[tuple[int, int]]  # characters of each token (its sentence's, without offsets)
    sentences: list[tuple[int, int]]  # [first, stop) token range of each sentence, in order, covering ids


def hat_special_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(cls, pad) ids a HAT segment uses: CLS, else BOS (RoBERTa-like), else the tokenizer's own prefix."""
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if cls is None:
        prefix, _ = special_tokens(tokenizer)
        cls = prefix[0] if prefix else None
    if cls is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has no cls_token nor bos_token to start each HAT segment with: "
            f"set one (tokenizer.cls_token = ...) to the token the model was trained with"
        )
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has no pad_token to fill HAT segments with: set tokenizer.pad_token "
            f"(e.g. to its eos_token) before segmenting"
        )
    return cls, tokenizer.pad_token_id


def _has_offsets(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "is_fast", False))


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], offsets: bool) -> dict:
    return tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=offsets,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,  # the length warning is meant for whole-model inputs
    )


def _tokenize(text: str, tokenizer: PreTrainedTokenizerBase) -> _Tokens:
    sentences = split_sentences(text)
    if not sentences:  # empty or blank: no tokens, even where a byte-level BPE would make some of the spaces
        return _Tokens([], [], [])
    if not _has_offsets(tokenizer):
        return _tokenize_sentences(text, sentences, tokenizer)
    encoded = _encode(tokenizer, [text], offsets=True)
    ids, offsets = list(encoded["input_ids"][0]), [tuple(o) for o in encoded["offset_mapping"][0]]
    return _Tokens(ids, offsets, sentence_token_ranges(offsets, sentences))


def _tokenize_sentences(text: str, sentences: list[tuple[int, int]], tokenizer) -> _Tokens:
    """Fallback without offsets: each sentence tokenized on its own; a token's span is its sentence's."""
    ids, spans, ranges = [], [], []
    encoded = _encode(tokenizer, [text[a:b] for a, b in sentences], offsets=False)
    for span, sentence_ids in zip(sentences, encoded["input_ids"]):
        ranges.append((len(ids), len(ids) + len(sentence_ids)))
        ids.extend(sentence_ids)
        spans.extend([span] * len(sentence_ids))
    return _Tokens(ids, spans, ranges)


# --- strategies: token ranges of each segment ---------------------------------------------------


def _greedy(sentences: list[tuple[int, int]], capacity: int) -> list[tuple[int, int]]:
    """Consecutive sentences packed while they fit in `capacity` tokens; a longer sentence starts a
    segment and goes on over the next ones (its tail may share a segment with what follows)."""
    segments, current = [], None
    for first, stop in sentences:
        if first == stop:
            continue
        if current is not None and stop - current[0] <= capacity:
            current = (current[0], stop)  # ranges are contiguous: current ends where this one starts
            continue
        if current is not None:
            segments.append(current)
        while stop - first > capacity:
            segments.append((first, first + capacity))
            first += capacity
        current = (first, stop)
    if current is not None:
        segments.append(current)
    return segments


def _uniform(num_tokens: int, capacity: int) -> list[tuple[int, int]]:
    return [(start, min(start + capacity, num_tokens)) for start in range(0, num_tokens, capacity)]


# --- packing -------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """A document's segments before `max_segments` cuts them."""

    pieces: list[list[int]]  # token ids of each segment, CLS excluded (each at most segment_size - 1)
    spans: list[tuple[int, int]]
    cut_tokens: int = 0  # already cut inside the pieces (truncated units)


def _plan(text_or_units, tokenizer, capacity: int, strategy: str) -> _Plan:
    if isinstance(text_or_units, str):
        if strategy not in ("greedy", "uniform"):
            raise ValueError(
                f"strategy={strategy!r} with a text: use 'greedy' or 'uniform', or pass a list of strings "
                f"(one segment each) for pre-segmented input"
            )
        tokens = _tokenize(text_or_units, tokenizer)
        ranges = _greedy(tokens.sentences, capacity) if strategy == "greedy" else _uniform(len(tokens.ids), capacity)
        spans = [(tokens.spans[a][0], tokens.spans[b - 1][1]) for a, b in ranges]  # first token's start, last's end
        return _Plan([tokens.ids[a:b] for a, b in ranges], spans)
    if strategy not in ("greedy", "units"):
        raise ValueError(
            f"strategy={strategy!r} with a list of units: a list is pre-segmented (one segment per unit); "
            f"join the units into one string to use strategy={strategy!r}"
        )
    units = list(text_or_units)
    if not all(isinstance(unit, str) for unit in units):
        raise ValueError("pre-segmented input must be a list of strings (one per segment)")
    encoded = _encode(tokenizer, units, offsets=False)["input_ids"] if units else []
    pieces = [list(ids[:capacity]) for ids in encoded]
    cut = sum(max(0, len(ids) - capacity) for ids in encoded)
    return _Plan(pieces, [(index, index + 1) for index in range(len(units))], cut)


def _pack(plan: _Plan, cls: int, pad: int, segment_size: int, max_segments: int, truncate: bool) -> HATSegments:
    pieces, spans = plan.pieces, plan.spans
    if not pieces:  # empty document: one segment with just CLS, so that the model has something to read
        pieces, spans = [[]], [(0, 0)]
    needed = len(pieces)
    if needed > max_segments and not truncate:
        raise ValueError(
            f"document needs {needed} segments of {segment_size} tokens but the model reads at most "
            f"{max_segments} (max_sentences): convert/train a model with a larger --max-sentences, or pass "
            f"truncate=True (--truncate) to keep the first {max_segments}"
        )
    kept = pieces[:max_segments]
    dropped = sum(map(len, pieces[max_segments:]))
    input_ids, attention_mask = [], []
    for piece in kept:  # [CLS] + tokens + padding: segment_size each
        padding = segment_size - 1 - len(piece)
        input_ids += [cls, *piece] + [pad] * padding
        attention_mask += [1] * (1 + len(piece)) + [0] * padding
    return HATSegments(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_segments=len(kept),
        char_spans=list(spans[:max_segments]),
        cut_segments=needed - len(kept),
        cut_tokens=plan.cut_tokens + dropped,
        tokens=sum(map(len, kept)),
    )


def _check_sizes(segment_size: int, max_segments: int) -> None:
    if segment_size < 2:
        raise ValueError(f"segment_size={segment_size} leaves no room after CLS: use at least 2 (HAT uses 128)")
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")


def _share(cut: int, kept: int) -> str:
    return f"{100 * cut / (cut + kept):.0f}%" if cut + kept else "0%"


# --- entry points --------------------------------------------------------------------------------


def segment_document(
    text_or_units: str | Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    segment_size: int,
    max_segments: int,
    strategy: str = "greedy",
    truncate: bool = False,
) -> HATSegments:
    """One document as HAT segments.

    `text_or_units`: a text, cut by `strategy` ('greedy' or 'uniform'), or a list of strings, one
    segment each (pre-segmented; `strategy` 'units' or the default). An empty document gives one
    segment with just CLS (so does a blank one). More than `max_segments` segments raise ValueError, or with
    `truncate=True` keep the first `max_segments` and warn how much was cut. Units truncated to fit
    a segment are only counted (`cut_tokens`), not warned about.
    """
    _check_sizes(segment_size, max_segments)
    cls, pad = hat_special_ids(tokenizer)
    plan = _plan(text_or_units, tokenizer, segment_size - 1, strategy)
    result = _pack(plan, cls, pad, segment_size, max_segments, truncate)
    if result.cut_segments:
        warnings.warn(
            f"document needs {result.num_segments + result.cut_segments} segments of {segment_size} tokens but the "
            f"model reads at most {max_segments} (max_sentences): kept the first {max_segments}, cut "
            f"{result.cut_segments} segments and {result.cut_tokens} tokens "
            f"({_share(result.cut_tokens, result.tokens)} of the document)",
            stacklevel=2,
        )
    return result


def segment_documents(
    texts: Sequence[str | Sequence[str]],
    tokenizer: PreTrainedTokenizerBase,
    segment_size: int,
    max_segments: int,
    strategy: str = "greedy",
    truncate: bool = False,
) -> list[HATSegments]:
    """`segment_document` over many documents, with one warning that sums up every cut document."""
    _check_sizes(segment_size, max_segments)
    cls, pad = hat_special_ids(tokenizer)
    results = []
    for index, document in enumerate(texts):
        plan = _plan(document, tokenizer, segment_size - 1, strategy)
        try:
            results.append(_pack(plan, cls, pad, segment_size, max_segments, truncate))
        except ValueError as error:
            raise ValueError(f"document {index}: {error}") from None
    cut = [result for result in results if result.cut_segments]
    if cut:
        cut_tokens, kept_tokens = sum(r.cut_tokens for r in cut), sum(r.tokens for r in cut)
        warnings.warn(
            f"{len(cut)} of {len(results)} documents need more than {max_segments} segments of {segment_size} "
            f"tokens (max_sentences): kept the first {max_segments} of each, cut "
            f"{sum(r.cut_segments for r in cut)} segments and {cut_tokens} tokens in all "
            f"({_share(cut_tokens, kept_tokens)} of those documents); a model with a larger --max-sentences reads "
            f"them whole",
            stacklevel=2,
        )
    return results


def batch_segments(
    docs: Sequence[HATSegments], pad_token_id: int, num_segments: int | None = None
) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask (B, N * S) long tensors; N = `num_segments` or the batch's most.

    A document with fewer segments is padded with empty segments: all `pad_token_id`, mask 0
    (CLS slot included), which is how HAT tells a missing segment from a real one.
    """
    if not docs:
        raise ValueError("batch_segments needs at least one document")
    sizes = {doc.segment_size for doc in docs}
    if len(sizes) > 1:
        raise ValueError(f"documents were segmented with different segment sizes {sorted(sizes)}: use one per batch")
    (size,) = sizes
    most = max(doc.num_segments for doc in docs)
    total = most if num_segments is None else num_segments
    if most > total:
        index = next(i for i, doc in enumerate(docs) if doc.num_segments > total)
        raise ValueError(
            f"document {index} has {docs[index].num_segments} segments but num_segments={total}: segment it with "
            f"max_segments <= {total} (truncate=True keeps the first ones), or pass a larger num_segments"
        )
    input_ids = torch.full((len(docs), total * size), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(docs), total * size), dtype=torch.long)
    for row, doc in enumerate(docs):
        input_ids[row, : len(doc.input_ids)] = torch.tensor(doc.input_ids, dtype=torch.long)
        attention_mask[row, : len(doc.attention_mask)] = torch.tensor(doc.attention_mask, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
