"""The segment classifier (segment, chunk-pool and truncate families) as two graphs, the two calls its
family makes: the segment encoder (token ids of S segments -> S vectors, `encode_segments`) and the
head over a batch of documents' segment vectors (`model(segment_embeddings=..., segment_mask=...)`).

Two graphs, not one, because prediction encodes the segments of all documents in length-sorted batches
and the head then reads each document's vectors; explanations re-encode occluded segments and run the
head again. The head graph is the model's forward on vectors without its input checks (they read tensor
values), with the probe's leave-one-out max taken over one extra masked slot, so that it needs no
`min(2, N)` (a Python int of the traced length); `onnx_model.OnnxSegmentClassifier` makes the checks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.segment_classifier import _pool_logits, pooled_mean_max

ENCODER_INPUTS = ("input_ids", "attention_mask")
ENCODER_OUTPUTS = ("segment_vectors",)
HEAD_INPUTS = ("segment_embeddings", "segment_mask")


def head_outputs(method: str) -> tuple[str, ...]:
    """The head graph's outputs: logits and the per-segment weights explanations read."""
    return ("logits", "label_attentions") if method == "segment" else ("logits", "segment_logits")


class SegmentEncoderGraph(nn.Module):
    """forward(input_ids, attention_mask) (S, L) int64 -> segment vectors (S, C)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model.encode_segments(input_ids, attention_mask)


class SegmentHeadGraph(nn.Module):
    """forward(segment_embeddings (B, N, C) float32, segment_mask (B, N) bool) -> logits (B, L) and
    label_attentions (B, L, N) (method "segment") or segment_logits (B, N, L) (chunk-pool, truncate)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, segment_embeddings, segment_mask):
        model, config = self.model, self.model.config
        vectors, mask = segment_embeddings, segment_mask
        if config.method != "segment":
            segment_logits = model.classifier(vectors)  # (B, N, L); dropout is off in eval
            return _pool_logits(segment_logits, mask, config.chunk_pooling), segment_logits
        states = model.aggregator(vectors, mask)
        content = model.aggregator.layer_norm(vectors)
        logits, weights = model.label_attention(states, mask, content)
        if config.probe_weight:
            logits = model._mix_probe(logits, model.probe(pooled_mean_max(vectors, mask)))
            w = config.probe_weight
            weights = (1 - w) * weights + w * probe_segment_weights(model.probe, vectors, mask)
        return logits, weights


def probe_segment_weights(probe: nn.Linear, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`SegmentClassifier._probe_segment_weights` with the top two taken over the segments plus one
    masked slot (so that there are always two, whatever N): the same values, no Python int of N."""
    floor = torch.finfo(vectors.dtype).min
    counts = mask.sum(1).to(vectors.dtype)[:, None, None]  # (B, 1, 1)
    total = (vectors * mask[..., None]).sum(1, keepdim=True)  # (B, 1, C)
    mean_without = (total - vectors) / (counts - 1).clamp(min=1)  # (B, N, C)
    filled = vectors.masked_fill(~mask[..., None], floor)
    two = torch.cat([filled, torch.full_like(filled[:, :1], floor)], dim=1).topk(2, dim=1).values  # (B, 2, C)
    second = torch.where(counts >= 2, two[:, 1:], two[:, :1])  # a lone segment: nothing to leave out
    max_without = torch.where(vectors >= two[:, :1], second, two[:, :1])  # (B, N, C)
    full = probe(pooled_mean_max(vectors, mask)).log_softmax(-1)  # (B, L)
    without = probe(torch.cat([mean_without, max_without], -1)).log_softmax(-1)  # (B, N, L)
    drops = (full[:, None, :] - without).transpose(1, 2)  # (B, L, N)
    return drops.masked_fill(~mask[:, None, :], floor).softmax(-1)
