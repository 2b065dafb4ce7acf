"""Cutting a tokenized document into segments a short encoder can read.

The whole document is tokenized once without special tokens; windows of `chunk_size` tokens
start every `stride` tokens (stride < chunk_size overlaps them) until a window reaches the end;
a tail window shorter than `min_tail` is dropped when the document has other windows. Each
window gets the encoder's own special tokens from its tokenizer (`[CLS] ... [SEP]` for BERT,
`<s> ... </s>` for RoBERTa/MPNet): no id is hard-coded. Character spans are kept so that an
explanation can quote the text of a segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Segmentation:
    chunk_size: int
    stride: int
    min_tail: int
    max_segments: int | None = None  # keep at most this many windows (None: all)

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of tokens, got {self.chunk_size}")
        if not 1 <= self.stride <= self.chunk_size:
            raise ValueError(
                f"stride={self.stride} must be between 1 and chunk_size={self.chunk_size}: windows further apart "
                f"than their length would skip text; use stride <= chunk_size (equal: no overlap)"
            )
        if not 0 <= self.min_tail <= self.chunk_size:
            raise ValueError(f"min_tail={self.min_tail} must be between 0 and chunk_size={self.chunk_size}")
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {self.max_segments}")

    def windows(self, num_tokens: int) -> list[tuple[int, int]]:
        """[start, stop) token ranges of the segments of a document of `num_tokens` tokens."""
        return self.all_windows(num_tokens)[: self.max_segments]

    def all_windows(self, num_tokens: int) -> list[tuple[int, int]]:
        """The windows before `max_segments` cuts them."""
        if num_tokens <= 0:
            return [(0, 0)]
        spans = []
        start = 0
        while True:
            stop = min(start + self.chunk_size, num_tokens)
            spans.append((start, stop))
            if stop >= num_tokens:
                break
            start += self.stride
        if len(spans) > 1 and spans[-1][1] - spans[-1][0] < self.min_tail:
            spans.pop()
        return spans


@dataclass
class SegmentedDocument:
    segments: list[list[int]]  # token ids of each segment, special tokens included
    char_spans: list[tuple[int, int]]  # [start, end) characters of each segment in the text
    num_tokens: int  # tokens of the whole document (special tokens excluded)
    dropped_segments: int = 0  # windows beyond max_segments


def check_chunk_size(tokenizer: PreTrainedTokenizerBase, chunk_size: int, encoder_max_tokens: int) -> None:
    """Refuse a chunk that, with the encoder's special tokens, exceeds what the encoder reads."""
    specials = sum(map(len, special_tokens(tokenizer)))
    if chunk_size + specials > encoder_max_tokens:
        raise ValueError(
            f"chunk_size={chunk_size} is larger than the encoder allows: it reads {encoder_max_tokens} tokens, "
            f"{specials} of them special, so use chunk_size <= {encoder_max_tokens - specials}"
        )


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """(prefix, suffix) ids the tokenizer puts around a single sequence, read off its own output."""
    for probe in ("longdoc", "a", tokenizer.unk_token or ""):
        plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
        if not plain:  # a tiny vocabulary may drop the probe: try another
            continue
        full = tokenizer(probe, add_special_tokens=True)["input_ids"]
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return full[:start], full[start + len(plain) :]
    raise ValueError(f"cannot tell the special tokens of {type(tokenizer).__name__} from its text tokens")


def segment_documents(
    texts: list[str], tokenizer: PreTrainedTokenizerBase, segmentation: Segmentation, batch_size: int = 64
) -> list[SegmentedDocument]:
    """Tokenize `texts` (in batches, fast tokenizer) and cut each into segments."""
    prefix, suffix = special_tokens(tokenizer)
    results = []
    for first in range(0, len(texts), batch_size):
        batch = texts[first : first + batch_size]
        encoded = tokenizer(
            batch,
            add_special_tokens=False,
            return_offsets_mapping=tokenizer.is_fast,
            return_attention_mask=False,
            verbose=False,  # the length warning is meant for whole-model inputs
        )
        for index, ids in enumerate(encoded["input_ids"]):
            offsets = encoded["offset_mapping"][index] if tokenizer.is_fast else None
            results.append(_segment(ids, offsets, len(batch[index]), prefix, suffix, segmentation))
    return results


def _segment(ids, offsets, text_length, prefix, suffix, segmentation: Segmentation) -> SegmentedDocument:
    all_windows = segmentation.all_windows(len(ids))
    windows = all_windows[: segmentation.max_segments]
    segments, spans = [], []
    for start, stop in windows:
        segments.append(prefix + list(ids[start:stop]) + suffix)
        if offsets is None or stop <= start:
            spans.append((0, text_length) if stop <= start else (-1, -1))
        else:
            spans.append((offsets[start][0], offsets[stop - 1][1]))
    return SegmentedDocument(segments, spans, len(ids), len(all_windows) - len(windows))
