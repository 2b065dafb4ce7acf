"""Tiny encoders and labelled document sets made locally (no model hub), shared by the classification tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import transformers

WORDS = [f"w{i}" for i in range(90)]
# plain sentences that carry no label: the filler of documents whose evidence sentences tests look for
OFFICE_SENTENCES = [
    "The committee met on Tuesday morning to review the agenda for the coming quarter.",
    "Several members noted that the parking lot behind the building will be repaved in spring.",
    "Lunch was served in the small conference room on the third floor.",
    "The weather stayed mild for most of the week, with light rain on Thursday.",
    "A new coffee machine was installed next to the elevators.",
    "Minutes of the previous meeting were approved without changes.",
    "The annual picnic will take place in the park near the river.",
    "Visitors are asked to sign in at the front desk and wear a badge.",
    "The library extended its opening hours during the holiday season.",
    "Our team photo will be taken in the lobby after the afternoon break.",
    "The printer on the second floor has been replaced with a newer model.",
    "Staff are reminded to keep the kitchen tidy and to label their food.",
    "The fire drill is scheduled for the first Monday of next month.",
    "Two interns joined the office this week and were shown around the building.",
    "The garden outside the entrance was planted with tulips and daffodils.",
    "Everyone is welcome to suggest topics for the next newsletter.",
]
SIGNAL = {"alpha": "w7", "beta": "w8", "gamma": "w9"}  # a label's keyword, hidden in one later segment
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, type_vocab_size=2,
            initializer_range=0.1)  # large random weights: token identity survives into the vectors


def bert_tokenizer(extra: list[str] = ()) -> transformers.PreTrainedTokenizerBase:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list(extra)
    return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def tiny_bert(folder: Path, max_positions: int = 64, extra_tokens: list[str] = (), seed: int = 0) -> Path:
    tokenizer = bert_tokenizer(extra_tokens)
    config = transformers.BertConfig(vocab_size=len(tokenizer), max_position_embeddings=max_positions, **TINY)
    torch.manual_seed(seed)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def keyword_document(label: str, rng: random.Random, words: int = 120) -> str:
    """Filler words with the label's keyword repeated inside one segment after the first."""
    filler = WORDS[10:14]  # few filler words: the keyword stands out in a random encoder
    tokens = [rng.choice(filler) for _ in range(words)]
    start = rng.randrange(40, words - 10)
    for offset in range(6):
        tokens[start + offset] = SIGNAL[label]
    return " ".join(tokens)


def write_documents(path: Path, count: int, seed: int, labels=("alpha", "beta")) -> Path:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            label = labels[index % len(labels)]
            handle.write(json.dumps({"id": f"doc{index}", "text": keyword_document(label, rng), "label": label}) + "\n")
    return path


def write_splits(folder: Path, sizes: dict[str, int]) -> dict[str, Path]:
    """Keyword documents for each split, {"train": 48, "dev": 16} -> {split: its JSONL file}; split k
    is drawn with seed k, so the splits differ and each is the same on every run."""
    return {split: write_documents(folder / f"{split}.jsonl", count, seed)
            for seed, (split, count) in enumerate(sizes.items())}
