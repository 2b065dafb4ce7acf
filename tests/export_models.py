"""Tiny saved models of every family that exports (random heads: the export tests compare numbers, not
accuracy), built the way `longdoc train` builds them and saved as it saves them."""

from __future__ import annotations

from pathlib import Path

import torch

import transformers

import longdoc.assets
from longdoc.convert import convert
from longdoc.families import get_family

LABELS = ("alpha", "beta", "gamma")
HEAD_CONFIG = {"num_labels": 3, "id2label": dict(enumerate(LABELS)), "label2id": {n: i for i, n in enumerate(LABELS)}}


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _source(root: Path) -> Path:
    """A one-layer BERT with the packaged MiniLM's fast tokenizer (QA needs character offsets): one layer,
    because tracing a graph costs seconds per layer and every layer is the same code."""
    folder = root / "bert"
    if not folder.is_dir():
        tokenizer = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm())
        config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=4, intermediate_size=48, max_position_embeddings=64,
                                         initializer_range=0.2)
        torch.manual_seed(0)
        transformers.BertModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def longformer(root: Path, head: str, window: int = 8, max_length: int = 160) -> Path:
    """A Longformer converted from a tiny BERT (window 8: one-sided 4, many windows in 160 tokens)."""
    converted = root / f"longformer-{window}"
    if not converted.is_dir():
        convert(_source(root), converted, to="longformer", max_length=max_length, window=window)
    torch.manual_seed(0)
    head_config = HEAD_CONFIG if head == "classification" else {}
    model, tokenizer = get_family("longformer").build(head, str(converted), {"head_config": head_config})
    return _save(model, tokenizer, root / f"longformer-{head}")


def hat(root: Path, head: str) -> Path:
    """A HAT of up to 6 segments of 16 tokens: one layer, segment-wise then cross-segment."""
    converted = root / "hat-encoder"
    if not converted.is_dir():
        convert(_source(root), converted, to="hat", layout="SD", max_sentences=6, max_sentence_size=16)
    torch.manual_seed(0)
    head_config = {} if head == "spans" else HEAD_CONFIG
    model, tokenizer = get_family("hat").build(head, str(converted), {"head_config": head_config})
    return _save(model, tokenizer, root / f"hat-{head}")


def segment(root: Path, method: str, **fields) -> Path:
    """A segment-family classifier on a tiny BERT, segments of 12 tokens (at most 6 of them)."""
    torch.manual_seed(0)
    options = {"head_config": HEAD_CONFIG, "chunk_size": 12, "max_segments": 6,
               "config_overrides": fields}
    model, tokenizer = get_family(method).build("classification", str(_source(root)), options)
    if getattr(model.config, "probe_weight", 0):
        with torch.no_grad():  # a fitted probe is not zero
            model.probe.weight.normal_(std=0.5)
            model.probe.bias.normal_()
    name = "-".join([method] + [f"{k}-{v}" for k, v in fields.items()])
    return _save(model, tokenizer, root / name)
