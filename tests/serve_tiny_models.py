"""Tiny untrained models of every served kind, built locally in seconds (no model hub), shared by the
service tests: a segment classifier, a Longformer classifier (one 128-token window: a length limit), a HAT
sentence classifier, a Longformer question answerer and an LSG-BART summarizer. Random heads answer
arbitrarily but deterministically, which is all the service tests need (the CLI's answers to compare with)."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from longdoc.convert.seq2seq import warm_start_summarizer
from longdoc.data.labels import LabelSpace
from longdoc.families import get_family
from qa_toy_data import random_qa_model
from tiny_checkpoints import WORDS, keyword_document, tiny_bert

LABELS = LabelSpace(("alpha", "beta"), False)


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


KINDS = ("classifier", "longformer", "sentences", "qa", "summarizer")


def build_models(root: Path, kinds: tuple[str, ...] = KINDS) -> dict[str, Path]:
    """kind -> model folder, for each of `kinds` (default all: "classifier", "longformer", "sentences", "qa",
    "summarizer")."""
    source = tiny_bert(root / "bert", max_positions=64)
    torch.manual_seed(0)
    folders = {}
    labels = {"head_config": LABELS.config_fields()}
    if "classifier" in kinds:
        model, tokenizer = get_family("segment").build("classification", str(source), {**labels, "chunk_size": 16})
        folders["classifier"] = _save(model, tokenizer, root / "classifier")
    if "longformer" in kinds:
        model, tokenizer = get_family("longformer").build(
            "classification", str(source), {**labels, "max_length": 128, "work_dir": str(root / "work-longformer")})
        folders["longformer"] = _save(model, tokenizer, root / "longformer")
    if "sentences" in kinds:
        model, tokenizer = get_family("hat").build(
            "sentences", str(source), {**labels, "max_sentences": 8, "max_sentence_size": 16,
                                       "work_dir": str(root / "work-hat")})
        folders["sentences"] = _save(model, tokenizer, root / "sentences")
    if "qa" in kinds:
        folders["qa"] = random_qa_model("longformer", root / "qa")
    if "summarizer" in kinds:
        warm_start_summarizer(source, root / "summarizer", max_length=96, decoder_layers=1, block_size=8,
                              sparse_block_size=8, sparsity_factor=2, num_global_tokens=2)
        folders["summarizer"] = root / "summarizer"
    return folders


def documents(count: int, seed: int = 0, words: int = 120) -> list[str]:
    """Keyword documents of the tiny vocabulary (tests/tiny_checkpoints.py), of varied lengths."""
    rng = random.Random(seed)
    return [keyword_document(("alpha", "beta")[i % 2], rng, words=rng.randrange(60, words)) for i in range(count)]


def sentences_text(rng: random.Random, count: int = 4) -> str:
    return " ".join(" ".join(rng.choice(WORDS[10:30]) for _ in range(rng.randrange(3, 8))) + "." for _ in range(count))
