"""Sequential sentence classification: one label (or, multi-label, a set of labels) per sentence of a
document, read by a HAT with one segment per sentence so that segment i carries sentence i's label.

The label space and the metrics are those of document classification (`tasks.classification`),
taken over sentences: every scored sentence counts once, whatever its document. Sentences a model
does not read (beyond its `max_sentences`, with truncation) are not scored and are counted apart.
"""

from __future__ import annotations

import numpy as np

from ..data.documents import DataError, Document, SentenceDocument
from .classification import LabelSpace, classification_metrics

IGNORED = -100  # single-label target of a segment that is not a sentence (padding); also the Trainer's padding
IGNORED_ROW = -1.0  # multi-label: the row of such a segment (HATForSequentialSentenceClassification skips it)


def sentence_label_space(documents: list[SentenceDocument], multi_label: bool) -> LabelSpace:
    """The labels of every sentence; single-label data needs exactly one label per sentence."""
    if not multi_label:
        for document in documents:
            for index, labels in enumerate(document.labels):
                if len(labels) != 1:
                    raise DataError(
                        f"{document.source}: sentence {index + 1} has {len(labels)} labels {list(labels)} for a "
                        f"single-label task; give one label per sentence, or train with --multi-label"
                    )
    return LabelSpace.from_documents(_sentences_as_documents(documents), multi_label)


def encode_sentence_labels(space: LabelSpace, document: SentenceDocument, what: str = "the model") -> list:
    """Per sentence: class index (single-label) or 0/1 row (multi-label); unknown labels name the line."""
    return [space.encode(Document("", labels, f"{document.source}: sentence {index + 1}"), what)
            for index, labels in enumerate(document.labels)]


def _sentences_as_documents(documents: list[SentenceDocument]) -> list[Document]:
    return [Document("", labels, f"{d.source}: sentence {i + 1}")
            for d in documents for i, labels in enumerate(d.labels)]


def pad_sentence_targets(targets: list, count: int, multi_label: bool, num_labels: int) -> list:
    """A document's targets for `count` segments: the ones it has, then ignored ones."""
    filler = [IGNORED_ROW] * num_labels if multi_label else IGNORED
    return list(targets[:count]) + [filler] * (count - len(targets))


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
