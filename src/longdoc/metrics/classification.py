"""Document classification metrics, the ones every family reports (`space` is a `longdoc.data.labels.LabelSpace`).

Metrics come from scikit-learn; this module only decides which ones and names them:
accuracy (exact match for multi-label), macro and micro F1, per-label precision/recall/F1/support,
ROC-AUC (one-vs-rest macro over the labels present in the gold data) and the confusion matrix
(per label for multi-label).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..data.labels import LabelSpace

def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """(D, L) logits -> per-label probabilities: sigmoid (multi-label) or softmax."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predicted_indicators(probs: np.ndarray, multi_label: bool, threshold: float) -> np.ndarray:
    """(D, L) 0/1 predictions: labels above `threshold` (multi-label) or the argmax."""
    if multi_label:
        return (probs >= threshold).astype(int)
    out = np.zeros_like(probs, dtype=int)
    out[np.arange(len(probs)), probs.argmax(axis=1)] = 1
    return out


def classification_metrics(gold, probs: np.ndarray, space: LabelSpace, threshold: float = 0.5) -> dict:
    """All the metrics of predictions `probs` (D, L) against `gold`: class indices (D,) or 0/1 (D, L)."""
    probs = np.asarray(probs, dtype=np.float64)
    gold = np.asarray(gold)
    label_ids = list(range(len(space.names)))
    if space.multi_label:
        gold = gold.astype(int)
        predicted = predicted_indicators(probs, True, threshold)
    else:
        gold = gold.astype(int).reshape(-1)
        predicted = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=None if space.multi_label else label_ids, zero_division=0
    )
    per_label = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(space.names, precision, recall, f1, support)
    }
    average_kwargs = dict(zero_division=0) if space.multi_label else dict(labels=label_ids, zero_division=0)
    metrics = {
        "documents": int(len(gold)),
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, average="macro", **average_kwargs)),
        "micro_f1": float(f1_score(gold, predicted, average="micro", **average_kwargs)),
        "roc_auc": _roc_auc(gold, probs, space),
        "per_label": per_label,
    }
    if space.multi_label:
        matrices = multilabel_confusion_matrix(gold, predicted)
        metrics["confusion_matrix"] = {name: m.tolist() for name, m in zip(space.names, matrices)}
        metrics["confusion_matrix_layout"] = "per label: [[true negatives, false positives], [false negatives, true positives]]"
    else:
        metrics["confusion_matrix"] = confusion_matrix(gold, predicted, labels=label_ids).tolist()
        metrics["confusion_matrix_layout"] = "rows: gold label, columns: predicted label, in the order of 'labels'"
    metrics["labels"] = list(space.names)
    return metrics


def _roc_auc(gold: np.ndarray, probs: np.ndarray, space: LabelSpace) -> float | None:
    """Macro one-vs-rest ROC-AUC over labels with both classes in the gold data (None if none)."""
    indicators = gold if space.multi_label else np.eye(len(space.names), dtype=int)[gold]
    scores = []
    for column in range(indicators.shape[1]):
        if 0 < indicators[:, column].sum() < len(indicators):
            scores.append(roc_auc_score(indicators[:, column], probs[:, column]))
    return float(np.mean(scores)) if scores else None
