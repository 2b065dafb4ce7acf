"""Text in, answers out: a trained document classifier, whatever its family.

    from longdoc import DocumentClassifier
    classifier = DocumentClassifier.from_pretrained("my-model")
    classifier.predict(["a long document ..."], explain=True)
    classifier.evaluate("test.jsonl")   # the metrics `longdoc evaluate` prints

    from longdoc.pipelines import SentenceClassifier   # a HAT trained with task="sentences"
    tagger = SentenceClassifier.from_pretrained("my-tagger")
    tagger.predict([["First sentence.", "Second one."]])   # a label per sentence
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .data.documents import DataError, read_documents, read_sentence_documents
from .tasks.classification import LabelSpace, classification_metrics, predicted_indicators, probabilities
from .tasks.explanations import Explanation
from .tasks.families import classifier_task, load_classifier
from .tasks.sentences import encode_sentence_labels, sentence_metrics


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


class DocumentClassifier:
    """A saved classifier with its tokenizer, ready to predict from raw text."""

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
        self.model, self.tokenizer, self.family = model.eval(), tokenizer, family
        if truncate is not None and hasattr(model.config, "truncate_segments"):
            model.config.truncate_segments = bool(truncate)
        self.space = LabelSpace.from_config(model.config)
        self.threshold = getattr(model.config, "threshold", 0.5)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | None = None, truncate: bool | None = None):
        model, tokenizer, family = load_classifier(str(model_dir))
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device), tokenizer, family, truncate=truncate)

    def predict_logits(self, texts: list[str], explain: bool = False, bf16: bool | None = None, progress=None):
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"document {index} is empty: give text to classify")
        return self.family.predict(self.model, self.tokenizer, texts, explain=explain, bf16=bf16, progress=progress)

    def predict(self, texts: str | list[str], explain: bool = False, top_segments: int = 3, top_sentences: int = 3,
                bf16: bool | None = None, progress: str | None = None) -> list[DocumentPrediction]:
        """Labels and per-label probabilities of each text; with `explain`, for each predicted label an
        `Explanation`: its `top_segments` segments (weight, character span) and in each the
        `top_sentences` sentences that carry the label, scored by occlusion (see
        `longdoc.tasks.explanations`; it costs a few times the prediction)."""
        if explain and (top_segments < 1 or top_sentences < 0):
            raise ValueError(f"top_segments={top_segments} and top_sentences={top_sentences}: show at least one "
                             f"segment (--top-segments K >= 1) and zero or more sentences (--top-sentences K >= 0)")
        texts = [texts] if isinstance(texts, str) else list(texts)
        predictions = self.predict_logits(texts, explain, bf16, progress)
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


@dataclass
class SentencePrediction:
    """One document's sentences and, per sentence, its label (single-label) or labels (multi-label) and
    the probability of every label; None for a sentence the model did not read (beyond its
    max_sentences, with truncation)."""

    sentences: list[str]
    labels: list  # per sentence: a label, or a list of labels (multi-label); None when not read
    scores: list  # per sentence: {label: probability}, or None when not read

    @property
    def unread(self) -> int:
        return sum(label is None for label in self.labels)


class SentenceClassifier(DocumentClassifier):
    """A saved sequential sentence classifier (`longdoc train --task sentences --family hat`): one
    label per sentence. A document is a list of sentences, or a text that is split into sentences."""

    task = "sentences"

    def predict_logits(self, documents: list[list[str]], bf16: bool | None = None, progress=None, sources=None):
        for index, sentences in enumerate(documents):
            if not sentences or not any(isinstance(s, str) and s.strip() for s in sentences):
                raise DataError(f"{sources[index] if sources else f'document {index}'} has no sentences: give a list "
                                f"of sentences (or a text) to label")
            if not all(isinstance(s, str) for s in sentences):
                raise DataError(f"document {index}: sentences must be strings")
        return self.family.predict_sentences(self.model, self.tokenizer, documents, bf16=bf16, progress=progress,
                                             sources=sources)

    def predict(self, documents, bf16: bool | None = None, progress: str | None = None) -> list[SentencePrediction]:
        """Labels of every sentence of each document: a document is a list of sentences, or a text
        (split into sentences with `longdoc.data.sentences.split_sentences`, as `sentences` then
        shows); a text alone is one document: `predict([["First.", "Second."]])` labels one document."""
        documents = [documents] if isinstance(documents, str) else list(documents)
        documents = [split_into_sentences(d) if isinstance(d, str) else list(d) for d in documents]
        predictions = self.predict_logits(documents, bf16, progress)
        results = []
        for sentences, logits, unread in zip(documents, predictions.logits, predictions.unread):
            probs = probabilities(logits.reshape(-1, len(self.space.names)), self.space.multi_label)
            chosen = predicted_indicators(probs, self.space.multi_label, self.threshold)
            labels, scores = [], []
            for row in range(len(probs)):
                names = [self.space.names[i] for i in np.flatnonzero(chosen[row])]
                labels.append(names if self.space.multi_label else names[0])
                scores.append({name: float(p) for name, p in zip(self.space.names, probs[row])})
            results.append(SentencePrediction(list(sentences), labels + [None] * unread, scores + [None] * unread))
        return results

    def evaluate(self, path: str | os.PathLike, sentences_column: str = "sentences", label_column: str = "label",
                 progress: str | None = None) -> dict:
        """Sentence-level metrics on a labelled file (accuracy, macro/micro F1, per label, ...), with
        `documents` and `sentences` (scored) counts; sentences the model did not read (truncation)
        are not scored and counted in `sentences_not_read`."""
        documents = read_sentence_documents(path, sentences_column, label_column)
        gold = [encode_sentence_labels(self.space, d) for d in documents]
        start = time.perf_counter()
        predictions = self.predict_logits([list(d.sentences) for d in documents], progress=progress,
                                          sources=[d.source for d in documents])
        seconds = time.perf_counter() - start
        scored_gold = [target for targets, logits in zip(gold, predictions.logits) for target in targets[: len(logits)]]
        probs = probabilities(np.concatenate(predictions.logits), self.space.multi_label)
        metrics = sentence_metrics(scored_gold, probs, self.space, self.threshold, len(documents))
        metrics["sentences_not_read"] = sum(predictions.unread)
        metrics["seconds"] = seconds
        metrics["documents_per_second"] = len(documents) / seconds
        metrics["sentences_per_second"] = len(scored_gold) / seconds
        metrics["tokens_per_second"] = predictions.tokens / seconds
        return metrics


def load_pipeline(model_dir: str | os.PathLike, device: str | None = None,
                  truncate: bool | None = None) -> DocumentClassifier | SentenceClassifier:
    """The pipeline for a trained classifier folder: a DocumentClassifier, or a SentenceClassifier for
    a model that labels sentences."""
    cls = SentenceClassifier if classifier_task(str(model_dir)) == "sentences" else DocumentClassifier
    return cls.from_pretrained(model_dir, device=device, truncate=truncate)


def split_into_sentences(text: str) -> list[str]:
    """A text's sentences (longdoc's sentence splitter, as HAT's greedy segmentation uses)."""
    from .data.sentences import split_sentences

    return [text[start:end] for start, end in split_sentences(text)]

