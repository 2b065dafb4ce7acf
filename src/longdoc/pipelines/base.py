"""What every pipeline is: a saved model with its tokenizer (and its family), ready for raw inputs.

    pipeline = SomePipeline.from_pretrained("my-model")     # the folder `longdoc train` wrote
    pipeline.predict(inputs)                               # preprocess -> forward -> postprocess
    pipeline.evaluate("test.jsonl")                        # the metrics `longdoc evaluate` prints

A pipeline for a new task subclasses `Pipeline`: `heads` says which head kinds of models it reads
(a folder holding another kind is refused with an error saying what to do), `preprocess` turns
raw inputs into model features (checking them first), `forward` runs the model, `postprocess`
turns its outputs into the task's predictions, and `evaluate` scores a labelled file.
"""

from __future__ import annotations

import os

from ..families import load_model
from ..runtime import default_device


class Pipeline:
    heads: tuple[str, ...] = ()  # the head kinds (families.HEAD_KINDS) of the models it reads
    what = "model"  # how errors name its models: "a 'bert' checkpoint is not a longdoc <what>"
    train_hint = "longdoc train"  # the command that makes such a model

    def __init__(self, model, tokenizer, family=None):
        self.model, self.tokenizer, self.family = model.eval(), tokenizer, family

    @classmethod
    def load(cls, model_dir: str, dtype=None):
        """(model, tokenizer, family) saved in `model_dir`; a DataError when it is no model of `heads`."""
        return load_model(model_dir, cls.heads, cls.what, cls.train_hint, dtype=dtype)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | None = None, dtype=None, **options):
        """The pipeline of the model saved in `model_dir`, on `device` (default: CUDA when there is one);
        `options` go to the pipeline's constructor."""
        model, tokenizer, family = cls.load(str(model_dir), dtype=dtype)
        return cls(model.to(device or default_device()), tokenizer, family=family, **options)

    def preprocess(self, inputs, **options):
        """Raw inputs -> the features `forward` reads; bad inputs raise a DataError saying which."""
        raise NotImplementedError

    def forward(self, features, **options):
        """The model's raw outputs on the features."""
        raise NotImplementedError

    def postprocess(self, outputs, features, **options) -> list:
        """The model's outputs -> one prediction per input."""
        raise NotImplementedError

    def predict(self, inputs, **options) -> list:
        """One prediction per input; each step takes the options it knows and ignores the others."""
        features = self.preprocess(inputs, **options)
        return self.postprocess(self.forward(features, **options), features, **options)

    def __call__(self, inputs, **options) -> list:
        return self.predict(inputs, **options)

    def evaluate(self, path: str | os.PathLike, **options) -> dict:
        """The task's metrics on a labelled file (with the prediction speed)."""
        raise NotImplementedError
