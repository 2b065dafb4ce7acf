"""What a model family provides: one `build(head, source, options)` for every head kind it supports,
`load(model_dir, heads)` for the models it saved, and the hooks the classification tasks call to
feed and read its classifiers (features, collator, prediction; frozen-encoder caching, head
warm-up and the linear probe where the family has them).

A task asks a family for a head kind (`families.HEAD_KINDS`) and needs no method of its own on
the family: the spans of extractive QA come from the same `build("spans", ...)` on every family
that has the head. Families that read long documents whole (Longformer, LSG, HAT) convert a short
encoder into their architecture first, into the run's work folder, and take one of their own
checkpoints as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from ..errors import DataError
from . import FAMILIES, check_family, head_of_config, read_model_config

logger = logging.getLogger(__name__)

HAT_OPTIONS = ("layout", "max_sentences", "max_sentence_size", "segmentation", "truncate")  # --family hat only


@dataclass
class TrainingDefaults:
    """Hyper-parameters a family trains a classifier with when the user gives none (chosen on the
    kernel-docs dev split; see docs/classification.md)."""

    epochs: int
    learning_rate: float
    batch_size: int
    head_learning_rate: float | None = None  # new layers on top of a pretrained encoder
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    select_metric: str = "macro_f1"  # the dev score that picks the saved epoch: "macro_f1" or "loss" (lowest)
    balanced_classes: bool = False  # single-label: weight each class's loss by n / (classes x its count)


@dataclass
class Predictions:
    logits: np.ndarray  # (D, L)
    explanations: list[dict[str, list[tuple[float, int]]]] | None = None  # per document: label -> (weight, segment)
    segment_spans: list[list[tuple[int, int]]] | None = None  # per document: character spans of its segments
    tokens: int = 0  # tokens read
    segment_vectors: list[torch.Tensor] | None = None  # per document (N, C), kept with explain to score sentences


class Family:
    """One model family. `spec` (its registry entry) gives `name`, `description` and `heads`."""

    title = "model"  # how messages name its models: "a Longformer without a classification head"
    poolings: tuple[str, ...] | None = None  # the `pooling` values it takes (None: it has no such setting)

    def __init__(self, spec):
        self.spec = spec
        self.name, self.description, self.heads = spec.name, spec.description, spec.heads

    # -- building and loading: one method for every head kind -------------------------------------

    def build(self, head: str, source: str, options: dict) -> tuple[PreTrainedModel, object]:
        """A fresh `head` model whose encoder starts from the checkpoint `source` (converted into this
        family first where it is not one of its own), and its tokenizer.

        options: "head_config" (config fields of the head: num_labels, id2label...), "config_overrides"
        (other config fields), "work_dir" (where a conversion is written), and the family's settings
        (max_length, chunk_size, layout...)."""
        check_family(self.name, head)
        return self._build(head, source, options)

    def _build(self, head: str, source: str, options: dict) -> tuple[PreTrainedModel, object]:
        raise NotImplementedError

    def load(self, model_dir: str, heads: tuple[str, ...] = ("classification",), dtype=None) -> PreTrainedModel:
        """The model saved in `model_dir`, which must have one of the head kinds `heads`."""
        fields = read_model_config(model_dir)
        head = head_of_config(fields)
        if head not in heads:
            architectures = ", ".join(fields.get("architectures") or ()) or "no architecture"
            raise DataError(
                f"{model_dir}: a {self.title} without a {heads[0]} head ({architectures}); train one from "
                f"it with `longdoc train --family {self.name} --model {model_dir}`{self._train_hint(heads)}")
        return self._load(model_dir, head, fields, dtype)

    def _load(self, model_dir: str, head: str, fields: dict, dtype) -> PreTrainedModel:
        raise NotImplementedError

    def _train_hint(self, heads: tuple[str, ...]) -> str:
        return ""

    def task_of(self, config) -> str:
        """The classification head kind of a model with this config: "classification" or "sentences"."""
        head = head_of_config({"architectures": getattr(config, "architectures", None),
                               "model_type": getattr(config, "model_type", None)})
        return "sentences" if head == "sentences" else "classification"

    # -- classification hooks ------------------------------------------------------------------

    def defaults(self, frozen: bool) -> TrainingDefaults:
        raise NotImplementedError

    def training_items(self, model, tokenizer, texts: list, targets: list, options: dict) -> list[dict]:
        """One dict per document, the inputs the collator batches (labels under "labels")."""
        raise NotImplementedError

    def head_warmup_items(self, model, tokenizer, items: list[dict], options: dict) -> list[dict] | None:
        """The fine-tuning `items` (from `training_items`) as inputs that train only the layers above
        a frozen encoder, the first stage of fine-tuning (the collator batches them too); None when
        the family has no such stage."""
        return None

    def head_warmup_defaults(self) -> TrainingDefaults:
        """Hyper-parameters of the head warm-up stage (by default the family's frozen-encoder ones)."""
        return self.defaults(True)

    def fit_probe(self, model, train_items: list[dict], dev_items: list[dict], collate) -> dict | None:
        """After frozen training: fit a linear probe inside `model` and set how much of it to mix in by dev;
        returns what dev chose and the dev scores (None when the family has no probe)."""
        return None

    def collate(self, model, tokenizer):
        """A function that turns a list of items into a model batch."""
        raise NotImplementedError

    @staticmethod
    def item_length(item: dict) -> int:
        """What a document costs to batch (its segments or tokens), to group alike ones."""
        keys = ("segments", "segment_embeddings", "segment_states", "input_ids")
        return len(next(item[key] for key in keys if key in item))

    def predict(self, model, tokenizer, texts: list[str], explain: bool = False, bf16: bool | None = None,
                progress: str | None = None) -> Predictions:
        raise NotImplementedError

    def explain(self, model, tokenizer, texts: list[str], predictions: Predictions, labels: list[list[str]],
                probabilities: np.ndarray, top_segments: int = 3, top_sentences: int = 3, bf16: bool | None = None,
                progress: str | None = None) -> list[dict]:
        """Per document, label -> Explanation of each of its `labels` (what `predict(explain=True)`
        found); only families whose predict gives explanations implement it."""
        raise ValueError(f"--family {self.name} does not explain its predictions; the segment, chunk-pool and "
                         f"truncate families do")

    def check_documents(self, source: str, inputs: list, sources: list[str], options: dict) -> None:
        """Data problems this family finds without a model (before one is built); none by default."""

    def check_options(self, options: dict) -> None:
        """Settings that do not apply to this family, or that it cannot take, fail before anything is read."""
        check_pooling(self, options.get("pooling"))
        wrong = [f"--{name.replace('_', '-')}" for name in HAT_OPTIONS if options.get(name) not in (None, False)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} apply to --family hat only (HAT segments); --family {self.name} "
                             f"does not take them")


def with_labels(batch: dict, items: list[dict]) -> dict:
    """The batch plus the items' labels when they have any: class ids, or 0/1 rows for multi-label."""
    if "labels" in items[0]:
        labels = [item["labels"] for item in items]
        batch["labels"] = torch.tensor(labels, dtype=torch.float if isinstance(labels[0], list) else torch.long)
    return batch


def check_pooling(family: Family, pooling: str | None) -> None:
    """A `pooling` the family takes (families without the setting ignore it, as they always have)."""
    if pooling is None or family.poolings is None or pooling in family.poolings:
        return
    from . import get_family

    takers = [f"{name} ({', '.join(other.poolings)})" for name, other in ((n, get_family(n)) for n in FAMILIES)
              if other.poolings is not None and pooling in other.poolings]
    raise ValueError(f"--pooling {pooling} does not apply to --family {family.name}, which takes "
                     f"{', '.join(family.poolings)}" + (f"; it is for --family {', '.join(takers)}" if takers else ""))


def encoder_max_tokens(config, tokenizer) -> int:
    """Longest input the encoder reads: its position table (less RoBERTa-style padding rows)."""
    positions = getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length
    if config.model_type in ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer"):
        positions -= (config.pad_token_id or 0) + 1
    return min(positions, tokenizer.model_max_length) if tokenizer.model_max_length < 10**6 else positions


def head_model_class(classes: dict, head: str, family: str):
    """The model class of `head` in a family's table of classes."""
    if head not in classes:
        raise ValueError(f"--family {family} has no {head} model class for this checkpoint (it has "
                         f"{', '.join(classes)})")
    return classes[head]


def load_with_new_head(model_class, source: str, **fields) -> PreTrainedModel:
    """`model_class.from_pretrained(source)` where the head (or part of it) is new by design: transformers'
    multi-line load report of the missing head weights is replaced by one log line naming them."""
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, info = model_class.from_pretrained(source, ignore_mismatched_sizes=True, output_loading_info=True,
                                                  **fields)
    finally:
        transformers_logging.set_verbosity(level)
    new = sorted(set(info.get("missing_keys", ())) | {k for k, *_ in info.get("mismatched_keys", ())})
    if new:
        logger.info(f"{model_class.__name__}: new weights, trained from scratch: {', '.join(new)}")
    return model
