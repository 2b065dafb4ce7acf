"""Sequential sentence classification metrics: those of document classification
(`metrics.classification`) taken over sentences, every scored sentence counting once whatever its
document. Sentences a model does not read (beyond its `max_sentences`, with truncation) are not
scored and are counted apart.
"""

from __future__ import annotations

import numpy as np

from ..data.labels import IGNORED, LabelSpace
from .classification import classification_metrics


def scored_sentences(logits: np.ndarray, labels: np.ndarray, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """(gold, logits) of the real sentences in padded (D, N, L) logits and (D, N) / (D, N, L) labels
    (padding: -100 single-label, rows of -1 or -100 multi-label)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    keep = labels[..., 0] >= 0 if multi_label else labels != IGNORED
    return labels[keep], logits[keep]


def sentence_metrics(gold: list, probs: np.ndarray, space: LabelSpace, threshold: float, documents: int) -> dict:
    """Document-classification metrics over sentences: `gold` and `probs` (S, L) one row per scored sentence."""
    metrics = classification_metrics(gold, probs, space, threshold)
    metrics["sentences"] = metrics.pop("documents")
    return {"documents": documents, **metrics}
