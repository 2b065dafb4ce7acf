"""Why a segment classifier gave a label: the segments it read for it and, inside each, the
sentences that carry the label.

Label attention (for `chunk-pool` and `truncate`: each segment's share of the pooled logit) says
which segments a label read, but a segment is some 250 tokens, mostly not about the label. So the
sentences of each top segment are scored by occlusion: the document is classified again without
the sentence, and the sentence's score is how much the label's log-odds drop.

- Faithful: the document without the sentence goes through the model's own encoder and head, so
  the scores explain whatever the model predicts (not a proxy such as attention inside the encoder).
- Log-odds, log(p / (1 - p)), not the probability: a confident label (p = 0.999) hardly moves in
  probability when one of two evidence sentences goes, its log-odds do; for a softmax they weigh
  the label against all others (a raw logit can fall while the others fall more), and for a
  multi-label (sigmoid) model they are the label's logit.
- Only the segments that hold the sentence are re-encoded, its tokens removed; every other
  segment keeps its window and its vector, so the rest of the document reads the same. A sentence
  that crosses a segment boundary (or lies in two overlapping windows) is removed from all of them.
  All the occluded variants of a document are encoded together, in length-sorted batches.
- Sentences come from `longdoc.data.sentences` and map to tokens by the tokenizer's character
  offsets; a sentence longer than `max_unit_tokens` is scored in pieces of that many tokens, and a
  segment with more than `max_units` of them has neighbours scored together, which bounds the cost:
  explaining a document encodes at most about top_segments x max_units extra segments (with the
  defaults and ~250-token segments, typically 15-40 per label, a few times the document's own).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import torch

from ..data.segmentation import Segmentation, special_tokens
from ..data.sentences import sentence_token_ranges, split_sentences
from ..models.segment_encoding import encode_documents

logger = logging.getLogger(__name__)

MAX_UNIT_TOKENS = 64  # a longer sentence is scored in pieces this long
MAX_UNITS = 24  # sentences (or pieces) scored per segment; beyond, neighbours are scored together
HEAD_BATCH = 64  # occluded documents per head call


@dataclass
class SentenceEvidence:
    """A sentence (or a piece of a long one): `document[start:end] == text`; `score`: the drop of the
    label's log-odds when it is removed (positive: it supports the label)."""

    start: int
    end: int
    text: str
    score: float


@dataclass
class SegmentEvidence:
    """A segment the label read: its index, weight (label attention), characters `start:end` of the
    document (`text`), and its best-scoring sentences, best first."""

    segment: int
    weight: float
    start: int
    end: int
    text: str
    sentences: list[SentenceEvidence] = field(default_factory=list)


@dataclass
class Explanation:
    """Which parts of a document drove a label: its top segments and the sentences in them."""

    label: str
    probability: float
    segments: list[SegmentEvidence] = field(default_factory=list)

    def sentences(self) -> list[SentenceEvidence]:
        """The evidence sentences of all its segments, best first (each once)."""
        unique = {(s.start, s.end): s for segment in self.segments for s in segment.sentences}
        return sorted(unique.values(), key=lambda s: -s.score)

    def to_dict(self) -> dict:
        """Plain lists and dicts (JSON-serialisable)."""
        return asdict(self)


@dataclass(frozen=True, order=True)
class _Unit:
    first: int  # [first, stop) tokens of the document
    stop: int
    start: int  # [start, end) characters
    end: int


class OcclusionExplainer:
    """Explains a segment classifier's labels on documents segmented by `segmentation`."""

    def __init__(self, model, tokenizer, segmentation: Segmentation, multi_label: bool, bf16: bool | None = None,
                 max_unit_tokens: int = MAX_UNIT_TOKENS, max_units: int = MAX_UNITS):
        if max_unit_tokens < 1 or max_units < 1:
            raise ValueError(f"max_unit_tokens ({max_unit_tokens}) and max_units ({max_units}) must be at least 1")
        self.model, self.tokenizer, self.segmentation = model, tokenizer, segmentation
        self.multi_label, self.bf16 = multi_label, bf16
        self.max_unit_tokens, self.max_units = max_unit_tokens, max_units
        self.prefix, self.suffix = special_tokens(tokenizer)

    @torch.inference_mode()
    def explain(self, text: str, vectors: torch.Tensor, weights: dict[str, list[tuple[float, int]]],
                probabilities: dict[str, float], labels: list[str], top_segments: int = 3,
                top_sentences: int = 3) -> dict[str, Explanation]:
        """label -> Explanation for each of `labels`: its `top_segments` segments by `weights` (label ->
        (weight, segment) largest first) and their `top_sentences` best sentences. `vectors` (N, C) are
        the document's segment vectors as the prediction read them."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                 return_attention_mask=False, verbose=False)
        ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
        windows = self.segmentation.windows(len(ids))
        if len(windows) != len(vectors):
            raise ValueError(f"the document has {len(windows)} segments but {len(vectors)} segment vectors were "
                             f"given: pass the vectors of this document, segmented by the model's own settings")
        top = {label: weights[label][:top_segments] for label in labels}
        shown = sorted({index for pairs in top.values() for _, index in pairs})
        sentences = split_sentences(text)
        sentences = list(zip(sentences, sentence_token_ranges(offsets, sentences)))  # (characters, tokens)
        units = {index: self._units(windows[index], offsets, sentences) for index in shown}
        scored = sorted({unit for group in units.values() for unit in group})
        drops = self._occlusion_drops(ids, windows, vectors, scored) if scored else None  # (U, L)
        row_of = {unit: row for row, unit in enumerate(scored)}
        label_ids = {name: i for i, name in self.model.config.id2label.items()}
        explanations = {}
        for label in labels:
            segments = []
            for weight, index in top[label]:
                start, end = _char_span(windows[index], offsets, len(text))
                evidence = [SentenceEvidence(u.start, u.end, text[u.start : u.end],
                                             float(drops[row_of[u], label_ids[label]])) for u in units[index]]
                evidence.sort(key=lambda s: -s.score)
                segments.append(SegmentEvidence(index, weight, start, end, text[start:end], evidence[:top_sentences]))
            explanations[label] = Explanation(label, probabilities[label], segments)
        return explanations

    def _units(self, window: tuple[int, int], offsets, sentences) -> list[_Unit]:
        """What is scored in a segment: the sentences that overlap its window (whole, also where they
        cross its edges), long ones in pieces, neighbours merged down to `max_units`."""
        if window[1] <= window[0]:
            return []
        pieces = []
        for (start, end), (first, stop) in sentences:
            if first >= window[1] or stop <= window[0]:
                continue
            for piece in range(first, stop, self.max_unit_tokens):
                piece_stop = min(piece + self.max_unit_tokens, stop)
                if piece_stop <= window[0] or piece >= window[1]:
                    continue
                piece_start = start if piece == first else offsets[piece][0]
                piece_end = end if piece_stop == stop else offsets[piece_stop - 1][1]
                pieces.append(_Unit(piece, piece_stop, piece_start, piece_end))
        group = math.ceil(len(pieces) / self.max_units) if pieces else 1
        return [_Unit(chunk[0].first, chunk[-1].stop, chunk[0].start, chunk[-1].end)
                for chunk in (pieces[i : i + group] for i in range(0, len(pieces), group))]

    def _occlusion_drops(self, ids, windows, vectors, units: list[_Unit]) -> torch.Tensor:
        """(U, L): for each unit, how much each label's log-odds drop when its tokens are removed."""
        changed, segments = [], []  # per changed segment: (variant, segment index); its token ids
        for variant, unit in enumerate(units, start=1):
            for index, (first, stop) in enumerate(windows):
                if unit.first < stop and unit.stop > first:
                    kept = ids[first : max(first, unit.first)] + ids[min(stop, unit.stop) : stop]
                    changed.append((variant, index))
                    segments.append(self.prefix + kept + self.suffix)
        encoded = encode_documents(self.model, [[s] for s in segments], self.tokenizer.pad_token_id, bf16=self.bf16,
                                   progress=None)
        documents = vectors.float().unsqueeze(0).repeat(len(units) + 1, 1, 1)  # (1 + U, N, C); row 0: as read
        for (variant, index), vector in zip(changed, encoded):
            documents[variant, index] = vector[0]
        mask = torch.ones(documents.shape[:2], dtype=torch.bool)
        self.model.eval()
        logits = torch.cat([
            self.model(segment_embeddings=documents[i : i + HEAD_BATCH].to(self.model.device),
                       segment_mask=mask[i : i + HEAD_BATCH].to(self.model.device)).logits.float().cpu()
            for i in range(0, len(documents), HEAD_BATCH)
        ])
        odds = log_odds(logits, self.multi_label)
        return odds[:1] - odds[1:]


def log_odds(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """(B, L) logits -> (B, L) log(p / (1 - p)) of every label: the logit itself for sigmoid labels; for
    a softmax, the label's logit against the log-sum-exp of all the others (computed without forming p)."""
    if multi_label or logits.shape[-1] == 1:
        return logits
    eye = torch.eye(logits.shape[-1], dtype=torch.bool)
    others = logits.unsqueeze(1).expand(-1, logits.shape[-1], -1).masked_fill(eye, float("-inf"))  # (B, L, L)
    return logits - others.logsumexp(-1)


def _char_span(window: tuple[int, int], offsets, text_length: int) -> tuple[int, int]:
    """Characters of a token window (the whole text for an empty document)."""
    first, stop = window
    return (offsets[first][0], offsets[stop - 1][1]) if stop > first else (0, text_length)
