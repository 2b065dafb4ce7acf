"""Text in, answers out: a trained document classifier, whatever its family.

    from longdoc import DocumentClassifier
    classifier = DocumentClassifier.from_pretrained("my-model")
    classifier.predict(["a long document ..."], explain=True)
    classifier.evaluate("test.jsonl")   # the metrics `longdoc evaluate` prints
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from .data.documents import DataError, read_documents
from .tasks.classification import LabelSpace, classification_metrics, predicted_indicators, probabilities
from .tasks.families import load_classifier

SNIPPET_CHARS = 160


@dataclass
class DocumentPrediction:
    labels: list[str]  # predicted labels (one for single-label models)
    scores: dict[str, float]  # probability of every label
    explanation: dict[str, list[dict]] = field(default_factory=dict)  # label -> top segments: weight, text, span


class DocumentClassifier:
    """A saved classifier with its tokenizer, ready to predict from raw text."""

    def __init__(self, model, tokenizer, family):
        self.model, self.tokenizer, self.family = model.eval(), tokenizer, family
        self.space = LabelSpace.from_config(model.config)
        self.threshold = getattr(model.config, "threshold", 0.5)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | None = None) -> "DocumentClassifier":
        model, tokenizer, family = load_classifier(str(model_dir))
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device), tokenizer, family)

    def predict_logits(self, texts: list[str], explain: bool = False, bf16: bool | None = None, progress=None):
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"document {index} is empty: give text to classify")
        return self.family.predict(self.model, self.tokenizer, texts, explain=explain, bf16=bf16, progress=progress)

    def predict(self, texts: str | list[str], explain: bool = False, top_segments: int = 3,
                bf16: bool | None = None, progress: str | None = None) -> list[DocumentPrediction]:
        """Labels and per-label probabilities of each text; with `explain`, the segments that drove
        each predicted label (their weight and text, shortened)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        predictions = self.predict_logits(texts, explain, bf16, progress)
        probs = probabilities(predictions.logits, self.space.multi_label)
        chosen = predicted_indicators(probs, self.space.multi_label, self.threshold)
        results = []
        for row, text in enumerate(texts):
            labels = [self.space.names[i] for i in np.flatnonzero(chosen[row])]
            scores = {name: float(p) for name, p in zip(self.space.names, probs[row])}
            explanation = {}
            if explain and predictions.explanations is not None:
                spans = predictions.segment_spans[row]
                for label in labels:
                    explanation[label] = [
                        {"segment": index, "weight": weight, "chars": list(spans[index]),
                         "text": _snippet(text, spans[index])}
                        for weight, index in predictions.explanations[row][label][:top_segments]
                    ]
            results.append(DocumentPrediction(labels, scores, explanation))
        return results

    def evaluate(self, path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                 progress: str | None = None) -> dict:
        """The metrics on a labelled file; a label the model never saw is an error naming its line."""
        documents = read_documents(path, text_column, label_column)
        gold = [self.space.encode(d) for d in documents]
        start = time.perf_counter()
        predictions = self.predict_logits([d.text for d in documents], progress=progress)
        seconds = time.perf_counter() - start
        metrics = classification_metrics(gold, probabilities(predictions.logits, self.space.multi_label), self.space,
                                         self.threshold)
        metrics["seconds"] = seconds
        metrics["documents_per_second"] = len(documents) / seconds
        metrics["tokens_per_second"] = predictions.tokens / seconds
        return metrics


def _snippet(text: str, span: tuple[int, int]) -> str:
    start, end = span
    piece = " ".join(text[start:end].split())
    return piece if len(piece) <= SNIPPET_CHARS else piece[: SNIPPET_CHARS - 3].rstrip() + "..."
