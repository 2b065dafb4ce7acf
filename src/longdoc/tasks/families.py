"""How each model family builds, feeds and reads a document classifier.

`train`, `evaluate` and `predict` talk to a family only through `ClassifierFamily`, so a new
family (LSG, HAT) plugs in by registering one subclass. The segment classifier serves three
families that differ only in `SegmentClassifierConfig.method`:
`segment` (aggregator + label attention), `chunk-pool` (pooled segment logits) and `truncate`
(first segment only). `longformer` converts a short encoder into a Longformer and reads the
whole document (up to its length) at once. `hat` converts it into a HAT (hierarchical attention
transformer: segment-wise and cross-segment layers) that reads up to `max_sentences` segments of
`max_sentence_size` tokens; it alone also trains sequential sentence classification (`task="sentences"`,
one label per sentence, each sentence one segment).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from ..data.documents import DataError
from ..data.segmentation import Segmentation, SegmentedDocument, check_chunk_size, segment_documents
from ..models.segment_classifier import SegmentClassifier, SegmentClassifierConfig, pooled_mean_max
from ..models.segment_encoding import (
    DEFAULT_BATCH_TOKENS,
    SegmentVectorCache,
    autocast_context,
    bf16_autocast_default,
    encode_documents,
    length_sorted_batches,
    pad_segments,
)
from .classification import LabelSpace
from .explanations import Explanation, OcclusionExplainer

logger = logging.getLogger(__name__)


@dataclass
class TrainingDefaults:
    """Hyper-parameters a family trains with when the user gives none (chosen on the kernel-docs
    dev split; see docs/classification.md)."""

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


HAT_OPTIONS = ("layout", "max_sentences", "max_sentence_size", "segmentation", "truncate")  # --family hat only


class ClassifierFamily(ABC):
    name: str
    description: str
    model_types: tuple[str, ...] = ()  # config.model_type of the checkpoints this family loads
    tasks: tuple[str, ...] = ("classification",)  # "classification"; "sentences": one label per sentence
    poolings: tuple[str, ...] | None = None  # the `pooling` values it takes (None: it has no such setting)

    @abstractmethod
    def build(self, source: str, space: LabelSpace, options: dict) -> tuple[PreTrainedModel, object]:
        """A fresh classifier for `space` whose encoder starts from the checkpoint `source`; its tokenizer."""

    @abstractmethod
    def defaults(self, frozen: bool) -> TrainingDefaults: ...

    @abstractmethod
    def training_items(self, model, tokenizer, texts: list[str], targets: list, options: dict) -> list[dict]:
        """One dict per document, the inputs the collator batches (labels under "labels")."""

    def head_warmup_items(self, model, tokenizer, items: list[dict], options: dict) -> list[dict] | None:
        """The fine-tuning `items` (from `training_items`) as inputs that train only the layers above
        a frozen encoder, the first stage of fine-tuning (the collator batches them too); None when
        the family has no such stage."""
        return None

    def fit_probe(self, model, train_items: list[dict], dev_items: list[dict], collate) -> dict | None:
        """After frozen training: fit a linear probe inside `model` and set how much of it to mix in by dev;
        returns what dev chose and the dev scores (None when the family has no probe)."""
        return None

    def head_warmup_defaults(self) -> TrainingDefaults:
        """Hyper-parameters of the head warm-up stage (by default the family's frozen-encoder ones)."""
        return self.defaults(True)

    @abstractmethod
    def collate(self, model, tokenizer):
        """A function that turns a list of items into a model batch."""

    @staticmethod
    def item_length(item: dict) -> int:
        """What a document costs to batch (its segments or tokens), to group alike ones."""
        keys = ("segments", "segment_embeddings", "segment_states", "input_ids")
        return len(next(item[key] for key in keys if key in item))

    @abstractmethod
    def predict(self, model, tokenizer, texts: list[str], explain: bool = False, bf16: bool | None = None,
                progress: str | None = None) -> Predictions: ...

    def explain(self, model, tokenizer, texts: list[str], predictions: Predictions, labels: list[list[str]],
                probabilities: np.ndarray, top_segments: int = 3, top_sentences: int = 3, bf16: bool | None = None,
                progress: str | None = None) -> list[dict[str, Explanation]]:
        """Per document, label -> Explanation of each of its `labels` (what `predict(explain=True)`
        found); only families whose predict gives explanations implement it."""
        raise ValueError(f"--family {self.name} does not explain its predictions; the segment, chunk-pool and "
                         f"truncate families do")

    @abstractmethod
    def load(self, model_dir: str) -> PreTrainedModel:
        """The classifier saved in `model_dir`."""

    def family_of(self, config) -> "ClassifierFamily":
        """The registered family that reads a model with this config (itself, by default)."""
        return self

    def task_of(self, config) -> str:
        """What a model with this config does: "classification" (labels per document) or "sentences"."""
        return "classification"

    def check_documents(self, source: str, inputs: list, sources: list[str], options: dict) -> None:
        """Data problems this family finds without a model (before one is built); none by default."""

    def check_options(self, options: dict) -> None:
        """Settings that do not apply to this family, or that it cannot take, fail before anything is read."""
        check_pooling(self, options.get("pooling"))
        wrong = [f"--{name.replace('_', '-')}" for name in HAT_OPTIONS if options.get(name) not in (None, False)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} apply to --family hat only (HAT segments); --family {self.name} "
                             f"does not take them")


def _with_labels(batch: dict, items: list[dict]) -> dict:
    """The batch plus the items' labels when they have any: class ids, or 0/1 rows for multi-label."""
    if "labels" in items[0]:
        labels = [item["labels"] for item in items]
        batch["labels"] = torch.tensor(labels, dtype=torch.float if isinstance(labels[0], list) else torch.long)
    return batch


# ---------------------------------------------------------------------------------------------
# The segment classifier and its two baselines


class SegmentFamily(ClassifierFamily):
    model_types = (SegmentClassifierConfig.model_type,)
    poolings = ("cls", "mean")

    def __init__(self, name: str, method: str, description: str):
        self.name, self.method, self.description = name, method, description

    def build(self, source, space, options):
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder_config = AutoConfig.from_pretrained(source)
        max_tokens = encoder_max_tokens(encoder_config, tokenizer)
        chunk_size = options.get("chunk_size") or default_chunk_size(max_tokens, tokenizer)
        check_chunk_size(tokenizer, chunk_size, max_tokens)
        fields = dict(method=self.method, chunk_size=chunk_size, freeze_encoder=bool(options.get("freeze_encoder")))
        for key in ("stride", "pooling", "chunk_pooling", "max_segments", "threshold"):
            if options.get(key) is not None:
                fields[key] = options[key]
        fields.update(options.get("config_overrides") or {})
        model = SegmentClassifier.from_encoder(source, **fields, **space.config_fields())
        return model, tokenizer

    def load(self, model_dir):
        return SegmentClassifier.from_pretrained(model_dir)

    def family_of(self, config):
        return get_family(config.method)

    def defaults(self, frozen):
        if frozen:  # saved at the lowest dev loss: mean rank 3.8 over 5 set variants, by dev macro-F1 6.4 (benchmarks/results/tuning)
            return TrainingDefaults(epochs=40, learning_rate=1e-3, batch_size=16, select_metric="loss")
        return TrainingDefaults(epochs=4, learning_rate=5e-5, batch_size=4, head_learning_rate=1e-3)

    def fit_probe(self, model, train_items, dev_items, collate):
        """Logistic regression on standardized [mean; max] of the cached training segment vectors (C of the
        lowest dev log-loss), folded into `model.probe`; `probe_weight` then set to the mix of head and probe
        of the lowest dev log-loss (benchmarks/results/tuning/frozen_defaults.md: the head alone overfits
        small training sets, where the probe does better). Single-label segment models only."""
        if self.method != "segment" or model.config.problem_type != "single_label_classification":
            return None
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        def pooled(items):
            batch = collate([{"segment_embeddings": item["segment_embeddings"]} for item in items])
            return pooled_mean_max(batch["segment_embeddings"].double(), batch["segment_mask"]).numpy()

        train_x, dev_x = pooled(train_items), pooled(dev_items)
        train_y, dev_y = np.array([i["labels"] for i in train_items]), np.array([i["labels"] for i in dev_items])
        scaler = StandardScaler().fit(train_x)
        fits = {c: LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(train_x), train_y) for c in PROBE_C}
        losses = {c: _log_loss(_full_probabilities(f, scaler.transform(dev_x), model.config.num_labels), dev_y)
                  for c, f in fits.items()}
        c = min(PROBE_C, key=losses.get)
        _fold_probe(model.probe, fits[c], scaler, model.config.num_labels)
        probs = {}
        for name, weight in (("head", 0.0), ("probe", 1.0)):
            model.config.probe_weight = weight
            probs[name] = cached_item_logits(model, dev_items, collate).softmax(-1).numpy()
        mixes = {w: (1 - w) * probs["head"] + w * probs["probe"] for w in PROBE_WEIGHTS}
        weight = min(PROBE_WEIGHTS, key=lambda w: (_log_loss(mixes[w], dev_y), w))  # a tie keeps the head
        model.config.probe_weight = weight
        scores = {name: {"macro_f1": _macro_f1(dev_y, p), "log_loss": _log_loss(p, dev_y)}
                  for name, p in (("head", mixes[0.0]), ("probe", mixes[1.0]), ("chosen", mixes[weight]))}
        return {"probe_C": c, "probe_weight": weight, "dev": scores}

    def segmentation(self, config) -> Segmentation:
        return Segmentation(config.chunk_size, config.stride, config.min_tail, config.max_segments)

    def segments(self, model, tokenizer, texts) -> list[SegmentedDocument]:
        documents = segment_documents(texts, tokenizer, self.segmentation(model.config))
        cut = [d for d in documents if d.dropped_segments]
        if cut and self.method != "truncate":
            config = model.config
            warnings.warn(
                f"{len(cut)} of {len(documents)} documents are longer than max_segments={config.max_segments} "
                f"segments of {config.chunk_size} tokens; only their first {config.max_segments} segments are read "
                f"({sum(d.dropped_segments for d in cut)} segments left out). Train with a larger --max-segments to "
                f"read them whole",
                stacklevel=2,
            )
        return documents

    def training_items(self, model, tokenizer, texts, targets, options):
        documents = self.segments(model, tokenizer, texts)
        items = [{"segments": d.segments, "labels": t} for d, t in zip(documents, targets)]
        return self.head_warmup_items(model, tokenizer, items, options) if model.config.freeze_encoder else items

    def head_warmup_items(self, model, tokenizer, items, options):
        """Cached segment vectors of the encoder as it is (the frozen-encoder inputs)."""
        cache = SegmentVectorCache(model, options.get("cache_dir"), bf16=options.get("bf16"))
        vectors = cache.vectors([item["segments"] for item in items], tokenizer.pad_token_id,
                                progress=options.get("progress", "encoding segments"))
        return [{"segment_embeddings": v, "labels": item["labels"]} for v, item in zip(vectors, items)]

    def collate(self, model, tokenizer):
        pad = tokenizer.pad_token_id

        def collate(items: list[dict]) -> dict:
            batch = {}
            counts = [len(item.get("segments", item.get("segment_embeddings"))) for item in items]
            mask = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]  # (B, N)
            if "segment_embeddings" in items[0]:
                vectors = torch.zeros(len(items), max(counts), items[0]["segment_embeddings"].shape[-1])
                vectors[mask] = torch.cat([item["segment_embeddings"] for item in items])
                batch["segment_embeddings"] = vectors  # (B, N, C)
            else:
                ids, attention = pad_segments([s for item in items for s in item["segments"]], pad)  # (S, L)
                batch.update(input_ids=ids, attention_mask=attention)
            batch["segment_mask"] = mask
            return _with_labels(batch, items)

        return collate

    @torch.inference_mode()
    def predict(self, model, tokenizer, texts, explain=False, bf16=None, progress=None):
        documents = self.segments(model, tokenizer, texts)
        vectors = encode_documents(model, [d.segments for d in documents], tokenizer.pad_token_id, bf16=bf16,
                                   progress=progress)
        collate = self.collate(model, tokenizer)
        logits, explanations = [], []
        model.eval()
        for start in range(0, len(vectors), 64):
            batch = collate([{"segment_embeddings": v} for v in vectors[start : start + 64]])
            out = model(**{k: v.to(model.device) for k, v in batch.items()}, output_attentions=True)
            logits.append(out.logits.float().cpu())
            if explain:
                explanations.extend(_segment_weights(out, model.config))
        return Predictions(
            logits=torch.cat(logits).numpy(),
            explanations=explanations if explain else None,
            segment_spans=[d.char_spans for d in documents],
            tokens=sum(sum(len(s) for s in d.segments) for d in documents),
            segment_vectors=vectors if explain else None,
        )

    def explain(self, model, tokenizer, texts, predictions, labels, probabilities, top_segments=3, top_sentences=3,
                bf16=None, progress=None):
        """The top segments of each label by its weights, and their sentences scored by occlusion
        (`longdoc.tasks.explanations`: the drop of the label's log-odds without the sentence)."""
        from tqdm.auto import tqdm

        if not tokenizer.is_fast:
            raise ValueError(f"{type(tokenizer).__name__} gives no character offsets, which explanations need to "
                             f"place sentences in segments: load the model's fast tokenizer (use_fast=True)")
        explainer = OcclusionExplainer(model, tokenizer, self.segmentation(model.config),
                                       multi_label=model.config.problem_type == "multi_label_classification", bf16=bf16)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        results = []
        for row in tqdm(range(len(texts)), desc=progress, disable=progress is None):
            scores = {name: float(p) for name, p in zip(names, probabilities[row])}
            results.append(explainer.explain(texts[row], predictions.segment_vectors[row], predictions.explanations[row],
                                             scores, labels[row], top_segments, top_sentences))
        return results


PROBE_C = (0.01, 0.1, 1.0, 10.0)  # the probe's inverse regularisation, chosen by dev log-loss
# share of the probe in the mixed probabilities, chosen by dev log-loss: head, even mix or probe ranked first of five
# combinations over 9 set variants (benchmarks/results/tuning/frozen_defaults.md; a finer grid ranked 4th)
PROBE_WEIGHTS = (0.0, 0.5, 1.0)


def _fold_probe(probe: torch.nn.Linear, fit, scaler, num_labels: int) -> None:
    """Write the scikit-learn model (on standardized features) into `probe` (on raw features):
    w (x - mean) / scale + b = (w / scale) x + (b - w . mean / scale). A binary fit's one row is the logit of
    its second class (the first gets 0); a label absent from training gets a large negative bias."""
    coef, intercept = fit.coef_, fit.intercept_
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight = np.zeros((num_labels, coef.shape[1]))
    bias = np.full(num_labels, -30.0)
    weight[fit.classes_] = coef / scaler.scale_
    bias[fit.classes_] = intercept - weight[fit.classes_] @ scaler.mean_
    with torch.no_grad():
        probe.weight.copy_(torch.from_numpy(weight))
        probe.bias.copy_(torch.from_numpy(bias))


def _full_probabilities(fit, x: np.ndarray, num_labels: int) -> np.ndarray:
    out = np.zeros((len(x), num_labels))
    out[:, fit.classes_] = fit.predict_proba(x)
    return out


@torch.inference_mode()
def cached_item_logits(model, items: list[dict], collate) -> torch.Tensor:
    model.eval()
    logits = []
    for start in range(0, len(items), 64):
        batch = collate([{"segment_embeddings": i["segment_embeddings"]} for i in items[start : start + 64]])
        logits.append(model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().cpu())
    return torch.cat(logits)


def _log_loss(probs: np.ndarray, gold: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, None)).mean())


def _macro_f1(gold: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, probs.argmax(1), average="macro", zero_division=0))


def _segment_weights(out, config) -> list[dict[str, list[tuple[float, int]]]]:
    """Per document, per label: (weight, segment index) of every real segment, largest first."""
    mask = out.segment_mask.cpu()
    if out.label_attentions is not None:
        weights = out.label_attentions.float().cpu()  # (B, L, N)
    else:  # chunk-pool / truncate: each segment's share of the label's pooled logit, as a softmax
        scores = out.segment_logits.float().cpu().transpose(1, 2)  # (B, L, N)
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
    result = []
    for row in range(weights.shape[0]):
        real = int(mask[row].sum())
        per_label = {}
        for label in range(weights.shape[1]):
            pairs = [(float(weights[row, label, n]), n) for n in range(real)]
            per_label[config.id2label[label]] = sorted(pairs, reverse=True)
        result.append(per_label)
    return result


# ---------------------------------------------------------------------------------------------
# Longformer converted from a short encoder


class LongformerFamily(ClassifierFamily):
    name = "longformer"
    description = "a Longformer converted from the encoder, reading up to --max-length tokens at once"
    model_types = ("longformer",)

    def build(self, source, space, options):
        from ..models import LongformerForSequenceClassification

        config = AutoConfig.from_pretrained(source)
        long_source = source
        if config.model_type != "longformer":
            from ..convert import convert

            long_source = os.path.join(options["work_dir"], "longformer-encoder")
            max_length = options.get("max_length") or 4096
            logger.info(f"converting {source} into a {max_length}-token Longformer at {long_source} ...")
            window = min(512, max_length - max_length % 2)  # the allenai window, or the whole input when shorter
            logger.info(convert(source, long_source, to="longformer", max_length=max_length, window=window))
        tokenizer = AutoTokenizer.from_pretrained(long_source)
        model = LongformerForSequenceClassification.from_pretrained(
            long_source, **space.config_fields(), **(options.get("config_overrides") or {}))
        return model, tokenizer

    def load(self, model_dir):
        from ..models import LongformerForSequenceClassification

        config = AutoConfig.from_pretrained(model_dir)
        if not any(a.endswith("ForSequenceClassification") for a in config.architectures or ()):
            raise DataError(
                f"{model_dir}: a Longformer without a classification head ({config.architectures}); train a "
                f"classifier from it with `longdoc train --family longformer --model {model_dir}`"
            )
        return LongformerForSequenceClassification.from_pretrained(model_dir)

    def defaults(self, frozen):
        if frozen:
            raise ValueError("--freeze-encoder works with the segment families (segment, chunk-pool, truncate); "
                             "a Longformer is trained whole")
        return TrainingDefaults(epochs=4, learning_rate=5e-5, batch_size=2, head_learning_rate=1e-3)

    def max_length(self, model, tokenizer) -> int:
        return model.config.max_position_embeddings - model.config.pad_token_id - 1

    def training_items(self, model, tokenizer, texts, targets, options):
        encoded = tokenizer(texts, truncation=True, max_length=self.max_length(model, tokenizer))["input_ids"]
        return [{"input_ids": ids, "labels": t} for ids, t in zip(encoded, targets)]

    def collate(self, model, tokenizer):
        def collate(items):
            ids, mask = pad_segments([item["input_ids"] for item in items], tokenizer.pad_token_id)
            return _with_labels({"input_ids": ids, "attention_mask": mask}, items)

        return collate

    @torch.inference_mode()
    def predict(self, model, tokenizer, texts, explain=False, bf16=None, progress=None):
        from tqdm.auto import tqdm

        items = self.training_items(model, tokenizer, texts, [0] * len(texts), {})
        lengths = [len(item["input_ids"]) for item in items]
        bf16 = bf16_autocast_default(model.device) if bf16 is None else bf16
        logits = [None] * len(items)
        model.eval()
        collate = self.collate(model, tokenizer)
        batches = length_sorted_batches(lengths, DEFAULT_BATCH_TOKENS)
        with autocast_context(model.device, bf16):
            for batch in tqdm(batches, desc=progress, disable=progress is None):
                inputs = collate([items[i] for i in batch])
                inputs.pop("labels")
                out = model(**{k: v.to(model.device) for k, v in inputs.items()})
                for row, index in enumerate(batch):
                    logits[index] = out.logits[row].float().cpu()
        return Predictions(logits=torch.stack(logits).numpy(), tokens=sum(lengths))


# ---------------------------------------------------------------------------------------------
# Registry and helpers


FAMILIES: dict[str, ClassifierFamily] = {}


def register_family(family: ClassifierFamily) -> None:
    FAMILIES[family.name] = family


register_family(SegmentFamily("segment", "segment", "segment encoder + Transformer aggregator + label attention"))
register_family(SegmentFamily("chunk-pool", "chunk-pool", "segment logits pooled by mean or max (belt-nlp's method)"))
register_family(SegmentFamily("truncate", "truncate", "the first segment only (first-512-token truncation)"))
register_family(LongformerFamily())


def check_pooling(family: ClassifierFamily, pooling: str | None) -> None:
    """A `pooling` the family takes (families without the setting ignore it, as they always have)."""
    if pooling is None or family.poolings is None or pooling in family.poolings:
        return
    takers = [f"{name} ({', '.join(f.poolings)})" for name, f in FAMILIES.items()
              if f.poolings is not None and pooling in f.poolings]
    raise ValueError(f"--pooling {pooling} does not apply to --family {family.name}, which takes "
                     f"{', '.join(family.poolings)}" + (f"; it is for --family {', '.join(takers)}" if takers else ""))


def get_family(name: str) -> ClassifierFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def load_classifier(model_dir: str):
    """(model, tokenizer, family) of a classifier folder written by `longdoc train`."""
    path = Path(model_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise DataError(
            f"{model_dir}: not a longdoc or transformers checkpoint (no config.json); give the folder that "
            f"`longdoc train --output` wrote"
        )
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except json.JSONDecodeError as error:
        raise DataError(f"{config_file}: malformed JSON ({error}); the checkpoint is damaged") from None
    for family in FAMILIES.values():
        if model_type in family.model_types:
            model = family.load(model_dir)
            family = family.family_of(model.config)
            return model, AutoTokenizer.from_pretrained(model_dir), family
    known = sorted({t for f in FAMILIES.values() for t in f.model_types})
    raise DataError(
        f"{model_dir}: a {model_type!r} checkpoint is not a longdoc document classifier (those are {', '.join(known)}); "
        f"train one with `longdoc train --task classification`"
    )


def classifier_task(model_dir: str) -> str:
    """What the classifier folder `model_dir` does, from its config.json alone: "sentences" (a label per
    sentence) or "classification" (also for a folder that is no classifier: loading it says why)."""
    try:
        fields = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "classification"
    for family in FAMILIES.values():
        if fields.get("model_type") in family.model_types:
            return family.task_of(_Fields(fields))
    return "classification"


class _Fields:
    """A config.json's fields as attributes (None when absent)."""

    def __init__(self, fields: dict):
        self.__dict__.update(fields)

    def __getattr__(self, name):
        return None


def encoder_max_tokens(config, tokenizer) -> int:
    """Longest input the encoder reads: its position table (less RoBERTa-style padding rows)."""
    positions = getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length
    if config.model_type in ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer"):
        positions -= (config.pad_token_id or 0) + 1
    return min(positions, tokenizer.model_max_length) if tokenizer.model_max_length < 10**6 else positions


def default_chunk_size(max_tokens: int, tokenizer) -> int:
    """Segments of 256 tokens including special tokens (or the encoder's whole length when shorter)."""
    from ..data.segmentation import special_tokens

    specials = sum(map(len, special_tokens(tokenizer)))
    return min(256, max_tokens) - specials


from .hat_family import HATFamily  # noqa: E402  (it builds on the helpers above)

register_family(HATFamily())
