"""Model families and the one registry of them: what each is called, which head kinds it builds, and
which saved models are its own. This module imports no torch, so that the command line can list
the families (and say which of them builds what) before anything heavy is loaded; the family
itself (`get_family(name)`, a `families.base.Family`) is imported on first use.

    from longdoc.families import get_family
    model, tokenizer = get_family("longformer").build("spans", "path/to/bert", {"work_dir": "tmp"})

A head kind is what a task asks of a family: "classification" (labels per document), "sentences"
(labels per sentence), "spans" (extractive QA: start/end logits per token), "tokens" (labels per
token), "choices" (multiple choice), "seq2seq" (an encoder-decoder that generates) and
"masked-lm". A family that cannot build a head kind says which families can.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

HEAD_KINDS = ("classification", "sentences", "spans", "tokens", "choices", "seq2seq", "masked-lm")

# the suffix of a transformers architecture name -> the head kind it has (sentences before classification)
ARCHITECTURE_HEADS = (
    ("ForSequentialSentenceClassification", "sentences"),
    ("ForSequenceClassification", "classification"),
    ("ForQuestionAnswering", "spans"),
    ("ForTokenClassification", "tokens"),
    ("ForMultipleChoice", "choices"),
    ("ForConditionalGeneration", "seq2seq"),
    ("ForMaskedLM", "masked-lm"),
)


@dataclass(frozen=True)
class FamilySpec:
    """A family as the registry knows it, without importing it.

    model_types: config.model_type of the checkpoints it reads; `marker_field`: a config field its
    checkpoints have and others of those model types lack (LSG's "block_size": an LSG-BERT is a
    "bert"); `variant_field`: a config field whose value names the family (the segment classifier's
    "method": segment, chunk-pool or truncate); `implementation`: "module:Class" of its `Family`."""

    name: str
    description: str
    heads: tuple[str, ...]
    implementation: str
    model_types: tuple[str, ...] = ()
    marker_field: str | None = None
    variant_field: str | None = None

    def claims(self, fields: dict) -> bool:
        """Whether a model whose config.json holds `fields` is this family's."""
        if fields.get("model_type") not in self.model_types:
            return False
        if self.marker_field is not None and self.marker_field not in fields:
            return False
        return self.variant_field is None or fields.get(self.variant_field) == self.name


FAMILIES: dict[str, FamilySpec] = {}
_LOADED: dict[str, object] = {}


def register_family(spec: FamilySpec) -> None:
    unknown = set(spec.heads) - set(HEAD_KINDS)
    if unknown:
        raise ValueError(f"family {spec.name!r} declares unknown head kinds {sorted(unknown)}; use {HEAD_KINDS}")
    FAMILIES[spec.name] = spec
    _LOADED.pop(spec.name, None)


def family_names() -> list[str]:
    return list(FAMILIES)


def families_with_head(head: str) -> list[str]:
    return [name for name, spec in FAMILIES.items() if head in spec.heads]


def check_family(name: str, head: str | None = None, task: str | None = None) -> FamilySpec:
    """The spec of family `name`; a ValueError when there is none, or when it cannot build `head`
    (naming the families that can, and the `task` that asks for it)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    spec = FAMILIES[name]
    if head is not None and head not in spec.heads:
        able = families_with_head(head)
        instead = f"use --family {' or '.join(able)}" if able else "no family builds it yet"
        if task is not None:
            raise ValueError(f"--task {task} is not trained by --family {name}: {instead}")
        raise ValueError(f"--family {name} cannot build a {head} model (it builds {', '.join(spec.heads)}): "
                         f"{instead}")
    return spec


def get_family(name: str):
    """The family `name` (a `longdoc.families.base.Family`), imported on first use."""
    spec = check_family(name)
    if name not in _LOADED:
        module, _, cls = spec.implementation.partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), cls)(spec)
    return _LOADED[name]


# --- what a saved model folder holds, from its config.json alone ---------------------------------


def read_model_config(model_dir) -> dict:
    """The fields of `model_dir`/config.json; a DataError when there is none or it is damaged."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        raise DataError(f"{model_dir}: not a longdoc or transformers checkpoint (no config.json); give the folder "
                        f"that `longdoc train --output` wrote")
    try:
        fields = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{config_file}: malformed JSON ({error}); the checkpoint is damaged") from None
    if not isinstance(fields, dict):
        raise DataError(f"{config_file}: not a model configuration (a JSON object); the checkpoint is damaged")
    return fields


def family_of_config(fields: dict) -> str | None:
    """The registered family whose model this is (None: no family's)."""
    return next((name for name, spec in FAMILIES.items() if spec.claims(fields)), None)


def head_of_config(fields: dict) -> str | None:
    """The head kind of a saved model (None: an encoder without a head)."""
    if fields.get("model_type") == "longdoc-segment-classifier":
        return "classification"
    for architecture in fields.get("architectures") or ():
        for suffix, head in ARCHITECTURE_HEADS:
            if architecture.endswith(suffix):
                return head
    return "seq2seq" if fields.get("is_encoder_decoder") else None


def load_model(model_dir, heads: tuple[str, ...], what: str, train_hint: str, dtype=None):
    """(model, tokenizer, family) of a folder holding a model with one of the head kinds `heads`.
    `what` names such a model ("document classifier") and `train_hint` how to make one, for the error
    a folder of another kind gives."""
    from transformers import AutoTokenizer

    fields = read_model_config(model_dir)
    name = family_of_config(fields)
    able = [n for n in FAMILIES if set(heads) & set(FAMILIES[n].heads)]
    if name is None or name not in able:
        known = sorted({t for n in able for t in FAMILIES[n].model_types})
        raise DataError(f"{model_dir}: a {fields.get('model_type')!r} checkpoint is not a longdoc {what} (those are "
                        f"{', '.join(known)}); train one with `{train_hint}`")
    family = get_family(name)
    model = family.load(str(model_dir), heads, dtype=dtype)
    return model, AutoTokenizer.from_pretrained(model_dir), family


register_family(FamilySpec(
    "segment", "segment encoder + Transformer aggregator + label attention", ("classification",),
    "longdoc.families.segment:SegmentFamily", ("longdoc-segment-classifier",), variant_field="method"))
register_family(FamilySpec(
    "chunk-pool", "segment logits pooled by mean or max (belt-nlp's method)", ("classification",),
    "longdoc.families.chunk_pool:ChunkPoolFamily", ("longdoc-segment-classifier",), variant_field="method"))
register_family(FamilySpec(
    "truncate", "the first segment only (first-512-token truncation)", ("classification",),
    "longdoc.families.truncate:TruncateFamily", ("longdoc-segment-classifier",), variant_field="method"))
register_family(FamilySpec(
    "longformer", "a Longformer converted from the encoder, reading up to --max-length tokens at once",
    ("classification", "spans", "tokens", "choices", "masked-lm"),
    "longdoc.families.longformer:LongformerFamily", ("longformer",)))
register_family(FamilySpec(
    "hat", "a HAT (hierarchical attention transformer) converted from the encoder, reading up to --max-sentences "
    "segments of --max-sentence-size tokens; also --task sentences",
    ("classification", "sentences", "spans", "tokens", "choices", "masked-lm"),
    "longdoc.families.hat:HATFamily", ("hierarchical-transformer",)))
register_family(FamilySpec(
    "lsg", "an LSG model (local, sparse and global attention) converted from the encoder, reading up to --max-length "
    "tokens at once; LSG-BART encoder-decoders for summarization",
    ("classification", "spans", "tokens", "choices", "masked-lm", "seq2seq"),
    "longdoc.families.lsg:LSGFamily", ("bert", "roberta", "mpnet", "bart"), marker_field="block_size"))
