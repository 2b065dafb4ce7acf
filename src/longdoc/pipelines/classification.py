"""Text in, labels out: a trained document classifier, whatever its family.

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

from ..data.documents import read_documents
from ..data.labels import LabelSpace
from ..errors import DataError
from ..families import family_of_config, get_family, load_model
from ..families.explanations import Explanation
from ..metrics.classification import classification_metrics, predicted_indicators, probabilities
from .base import Pipeline


@dataclass
class DocumentPrediction:
    labels: list[str]  # predicted labels (one for single-label models)
    scores: dict[str, float]  # probability of every label
    explanation: dict[str, Explanation] = field(default_factory=dict)  # label -> its top segments and sentences

    def to_dict(self) -> dict:
        """Plain lists and dicts (JSON-serialisable), the explanation included when there is one."""
        record = {"labels": self.labels, "scores": self.scores}
        if self.explanation:
            record["explanation"] = {label: e.to_dict() for label, e in self.explanation.items()}
        return record


class DocumentClassifier(Pipeline):
    """A saved classifier with its tokenizer, ready to predict from raw text."""

    heads = ("classification",)
    what = "document classifier"
    train_hint = "longdoc train --task classification"
    task = "classification"

    def __init__(self, model, tokenizer, family, truncate: bool | None = None):
        """`truncate` (HAT models): whether a document longer than the model's segments is cut (with a
        warning) or an error; None keeps what the model was trained with."""
        task = family.task_of(model.config)
        if task != self.task:
            kind, other = {"sentences": ("a sentence classifier (a label per sentence)", "SentenceClassifier"),
                           "classification": ("a document classifier", "DocumentClassifier")}[task]
            raise DataError(f"this model is {kind}: load it with longdoc.pipelines.{other} (or `longdoc predict`, "
                            f"which picks the right one)")
        super().__init__(model, tokenizer, family)
        if truncate is not None and hasattr(model.config, "truncate_segments"):
            model.config.truncate_segments = bool(truncate)
        self.space = LabelSpace.from_config(model.config)
        self.threshold = getattr(model.config, "threshold", 0.5)

    @classmethod
    def load(cls, model_dir: str, dtype=None):
        """Either kind of classifier: the wrong one is refused by the constructor, which names the right one."""
        return load_model(model_dir, ("classification", "sentences"), cls.what, cls.train_hint, dtype=dtype)

    @classmethod
    def from_model(cls, model, tokenizer=None, truncate: bool | None = None) -> "DocumentClassifier":
        """The pipeline of a classifier in memory (e.g. a `SegmentClassifier` just trained or built); the
        tokenizer is read from the model's folder unless given."""
        from transformers import AutoTokenizer

        name = family_of_config(model.config.to_dict())
        if name is None:
            raise ValueError(f"{type(model).__name__} is not a model of a longdoc family")
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model.name_or_path)
        return cls(model, tokenizer, get_family(name), truncate=truncate)

    def preprocess(self, texts, **options) -> list[str]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"document {index} is empty: give text to classify")
        return texts

    def forward(self, texts: list[str], explain: bool = False, bf16: bool | None = None, progress=None, **options):
        return self.family.predict(self.model, self.tokenizer, texts, explain=explain, bf16=bf16, progress=progress)

    def predict_logits(self, texts: list[str], explain: bool = False, bf16: bool | None = None, progress=None):
        return self.forward(self.preprocess(texts), explain=explain, bf16=bf16, progress=progress)

    def postprocess(self, predictions, texts, explain: bool = False, top_segments: int = 3, top_sentences: int = 3,
                    bf16: bool | None = None, progress: str | None = None, **options) -> list[DocumentPrediction]:
        probs = probabilities(predictions.logits, self.space.multi_label)
        chosen = predicted_indicators(probs, self.space.multi_label, self.threshold)
        labels = [[self.space.names[i] for i in np.flatnonzero(row)] for row in chosen]
        explanations = [{} for _ in texts]
        if explain and predictions.explanations is not None:
            explanations = self.family.explain(self.model, self.tokenizer, texts, predictions, labels, probs,
                                               top_segments, top_sentences, bf16,
                                               progress="explaining" if progress else None)
        return [DocumentPrediction(names, {name: float(p) for name, p in zip(self.space.names, row)}, explanation)
                for names, row, explanation in zip(labels, probs, explanations)]

    def predict(self, texts: str | list[str], explain: bool = False, top_segments: int = 3, top_sentences: int = 3,
                bf16: bool | None = None, progress: str | None = None) -> list[DocumentPrediction]:
        """Labels and per-label probabilities of each text; with `explain`, for each predicted label an
        `Explanation`: its `top_segments` segments (weight, character span) and in each the
        `top_sentences` sentences that carry the label, scored by occlusion (see
        `longdoc.families.explanations`; it costs a few times the prediction)."""
        if explain and (top_segments < 1 or top_sentences < 0):
            raise ValueError(f"top_segments={top_segments} and top_sentences={top_sentences}: show at least one "
                             f"segment (--top-segments K >= 1) and zero or more sentences (--top-sentences K >= 0)")
        return super().predict(texts, explain=explain, top_segments=top_segments, top_sentences=top_sentences,
                               bf16=bf16, progress=progress)

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
