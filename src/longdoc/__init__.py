"""longdoc: transformers over long documents.

    from longdoc import DocumentClassifier, Summarizer, train_classifier, LongformerModel, ...

Every name is imported on first use (`longdoc.X` or `from longdoc import X`), so that the command
line starts, and shows its help, without loading torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.3.0"

# name -> the module that defines it; the model classes (longdoc.models.__all__) come on top
_EXPORTS = {
    "SegmentClassifier": "longdoc.models.segment_classifier",
    "SegmentClassifierConfig": "longdoc.models.segment_classifier",
    "DocumentClassifier": "longdoc.pipelines",
    "DocumentPrediction": "longdoc.pipelines",
    "SentenceClassifier": "longdoc.pipelines",
    "SentencePrediction": "longdoc.pipelines",
    "Summarizer": "longdoc.pipelines",
    "load_pipeline": "longdoc.pipelines",
    "QuestionAnswerer": "longdoc.pipelines.qa",
    "pipeline": "longdoc.tasks.pipeline",
    "TrainingResult": "longdoc.training.train",
    "SummarizationResult": "longdoc.training.train",
    "train": "longdoc.training.train",
    "train_classifier": "longdoc.training.train",
    "train_summarizer": "longdoc.training.train",
}

_SUBPACKAGES = ("errors", "runtime", "logs", "assets", "data", "datasets", "metrics", "attention", "heads", "models",
                "convert", "families", "pipelines", "tasks", "training", "cli")


def _models():
    return importlib.import_module("longdoc.models")


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "__all__":
        return list(_models().__all__) + list(_EXPORTS)
    if name in _SUBPACKAGES:  # `import longdoc; longdoc.models.X`, as when the package imported them at once
        return importlib.import_module(f"longdoc.{name}")
    if name in ("LSG_CLASSES", "HAT_CLASSES") or (not name.startswith("_") and name in _models().__all__):
        return getattr(_models(), name)
    raise AttributeError(f"module 'longdoc' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_models().__all__))
