"""Toy long-context QA sets and random QA models of each long family, made locally (no model hub), shared
by test_qa_task and test_qa_pipeline.

A context is 150-260 random filler words of the tiny BERT vocabulary (tests/tiny_checkpoints.py) with
the answer "w7 w8 w9" inserted at a random place: longer than the 128-token windows the tests use, so
every question spans several windows and answers fall in the first, middle and last of them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from longdoc.families import get_family
from tiny_checkpoints import WORDS, tiny_bert

ANSWER = "w7 w8 w9"
QUESTION = "w3 w4 w5"
# the settings that make each family read 128-token windows (HAT: 4 segments of 32 tokens)
FAMILY_SETTINGS = {
    "longformer": {"max_length": 128},
    "lsg": {"max_length": 128, "block_size": 16, "sparse_block_size": 16},
    "hat": {"max_sentences": 4, "max_sentence_size": 32},
}


def toy_context(rng: random.Random, words: tuple[int, int] = (150, 260)) -> tuple[str, int]:
    """(context, character where ANSWER starts in it)."""
    filler = [rng.choice(WORDS[10:30]) for _ in range(rng.randint(*words))]
    position = rng.randrange(len(filler))
    before = " ".join(filler[:position])
    context = " ".join(part for part in (before, ANSWER, " ".join(filler[position:])) if part)
    return context, len(before) + 1 if before else 0


def write_toy_qa(path: Path, count: int, seed: int, unanswerable: int = 0) -> Path:
    """`count` questions as JSON lines; the last `unanswerable` of them have no answer (their context
    lacks ANSWER)."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            context, start = toy_context(rng)
            answers = {"text": [ANSWER], "answer_start": [start]}
            if index >= count - unanswerable:
                context = context.replace(ANSWER, "w11 w12 w13")
                answers = {"text": [], "answer_start": []}
            handle.write(json.dumps({"id": f"q{index}", "question": QUESTION, "context": context,
                                     "answers": answers}) + "\n")
    return path


def random_qa_model(family: str, folder: Path) -> Path:
    """A QA model of `family` (random head) built from a tiny BERT, saved with its tokenizer in `folder`."""
    source = tiny_bert(folder / "bert", max_positions=64)
    model, tokenizer = get_family(family).build("spans", str(source), {**FAMILY_SETTINGS[family],
                                                                       "work_dir": str(folder)})
    model.save_pretrained(folder / family)
    tokenizer.save_pretrained(folder / family)
    return folder / family
