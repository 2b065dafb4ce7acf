"""Sentences in, a label per sentence out: a HAT trained with task="sentences".

    from longdoc.pipelines import SentenceClassifier
    tagger = SentenceClassifier.from_pretrained("my-tagger")
    tagger.predict([["First sentence.", "Second one."]])   # a label per sentence
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..data.documents import read_sentence_documents
from ..data.labels import encode_sentence_labels
from ..data.sentences import split_sentences
from ..errors import DataError
from ..metrics.classification import predicted_indicators, probabilities
from ..metrics.sentences import sentence_metrics
from .classification import DocumentClassifier


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

    heads = ("sentences",)
    what = "sentence classifier"
    train_hint = "longdoc train --task sentences"
    task = "sentences"

    def preprocess(self, documents, sources: list[str] | None = None, **options) -> list[list[str]]:
        documents = [documents] if isinstance(documents, str) else list(documents)
        documents = [split_into_sentences(d) if isinstance(d, str) else list(d) for d in documents]
        for index, sentences in enumerate(documents):
            if not sentences or not any(isinstance(s, str) and s.strip() for s in sentences):
                raise DataError(f"{sources[index] if sources else f'document {index}'} has no sentences: give a list "
                                f"of sentences (or a text) to label")
            if not all(isinstance(s, str) for s in sentences):
                raise DataError(f"document {index}: sentences must be strings")
        return documents

    def forward(self, documents: list[list[str]], bf16: bool | None = None, progress=None, sources=None, **options):
        return self.family.predict_sentences(self.model, self.tokenizer, documents, bf16=bf16, progress=progress,
                                             sources=sources)

    def predict_logits(self, documents: list[list[str]], bf16: bool | None = None, progress=None, sources=None):
        return self.forward(self.preprocess(documents, sources=sources), bf16=bf16, progress=progress, sources=sources)

    def postprocess(self, predictions, documents, **options) -> list[SentencePrediction]:
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

    def predict(self, documents, bf16: bool | None = None, progress: str | None = None) -> list[SentencePrediction]:
        """Labels of every sentence of each document: a document is a list of sentences, or a text
        (split into sentences with `longdoc.data.sentences.split_sentences`, as `sentences` then
        shows); a text alone is one document: `predict([["First.", "Second."]])` labels one document."""
        return super(DocumentClassifier, self).predict(documents, bf16=bf16, progress=progress)

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


def split_into_sentences(text: str) -> list[str]:
    """A text's sentences (longdoc's sentence splitter, as HAT's greedy segmentation uses)."""
    return [text[start:end] for start, end in split_sentences(text)]
