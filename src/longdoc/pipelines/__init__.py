"""Pipelines: a saved model with its tokenizer, from raw inputs to predictions and metrics.

    from longdoc.pipelines import load_pipeline
    pipeline = load_pipeline("my-model")   # the pipeline of whatever the folder holds

- `DocumentClassifier`: labels (and explanations) of documents, whatever the family;
- `SentenceClassifier`: a label per sentence (a HAT trained with task="sentences");
- `Summarizer`: summaries from an encoder-decoder (LSG-BART);
- `QuestionAnswerer`: answers to questions, spans of long contexts (Longformer, LSG, HAT).

Every pipeline is a `pipelines.base.Pipeline`: from_pretrained, preprocess -> forward ->
postprocess, evaluate(path).
"""

from __future__ import annotations

import os

from ..families import head_of_config, read_model_config
from .base import Pipeline
from .classification import DocumentClassifier, DocumentPrediction
from .qa import QuestionAnswerer
from .sentences import SentenceClassifier, SentencePrediction, split_into_sentences
from .summarization import Summarizer

# head kind of a saved model -> the pipeline that reads it
PIPELINES: dict[str, type[Pipeline]] = {
    "classification": DocumentClassifier,
    "sentences": SentenceClassifier,
    "seq2seq": Summarizer,
    "spans": QuestionAnswerer,
}


def load_pipeline(model_dir: str | os.PathLike, device: str | None = None, **options) -> Pipeline:
    """The pipeline for a trained model folder, by the head its config.json names: a DocumentClassifier,
    a SentenceClassifier for a model that labels sentences, a Summarizer for an encoder-decoder. A folder
    of any other kind goes to DocumentClassifier, whose error says what the folder holds. `options` go to
    the pipeline's constructor (truncate=... for classifiers); those left at None are not passed."""
    try:
        head = head_of_config(read_model_config(model_dir))
    except ValueError:
        head = None  # no config.json or a damaged one: loading says so
    options = {name: value for name, value in options.items() if value is not None}
    return PIPELINES.get(head, DocumentClassifier).from_pretrained(model_dir, device=device, **options)


__all__ = ["DocumentClassifier", "DocumentPrediction", "Pipeline", "PIPELINES", "QuestionAnswerer",
           "SentenceClassifier", "SentencePrediction", "Summarizer", "load_pipeline", "split_into_sentences"]
