"""Training and evaluating summarizers (LSG-BART and other seq2seq models) on `transformers`' Seq2SeqTrainer.

    from longdoc import train_summarizer
    result = train_summarizer("train.jsonl", "dev.jsonl", "my-summarizer", model="my-lsg-bart")

Pairs are read (and every data problem reported) before the model is built. After each epoch the
model summarizes the dev file with beam search and is scored with ROUGE; the epoch with the best
dev ROUGE-L is kept and saved with its tokenizer, and `training_report.json` records every epoch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

from .data.pairs import read_pairs
from .logs import quiet_trainer
from .save_best import SaveBest
from .summarizer import load_seq2seq
from .tasks.summarization import require_rouge_score, rouge_scores

BEST_METRIC = "rougeL"
TRAINING_REPORT = "training_report.json"
PRECISIONS = ("fp32", "bf16", "fp16")

logger = logging.getLogger(__name__)


@dataclass
class SummarizationResult:
    output: str
    best_epoch: float | None
    dev_metrics: dict
    seconds: float
    history: list[dict] = field(default_factory=list)


class _PairDataset(torch.utils.data.Dataset):
    def __init__(self, pairs, tokenizer, max_source_length: int, max_target_length: int):
        self.items = []
        self.truncated = 0
        for pair in pairs:
            source = tokenizer(pair.text, truncation=True, max_length=max_source_length, return_token_type_ids=False)
            self.truncated += len(tokenizer(pair.text, verbose=False)["input_ids"]) > max_source_length
            target = tokenizer(text_target=pair.summary, truncation=True, max_length=max_target_length,
                               return_token_type_ids=False)
            self.items.append({**source, "labels": target["input_ids"]})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class _SaveBestRouge(SaveBest):
    """The summarizers' saver: best dev ROUGE-L; each epoch's record has its mean train loss too."""

    def __init__(self, output: Path, tokenizer):
        super().__init__(output, tokenizer, metric=BEST_METRIC, greater_is_better=True)
        self.losses = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def make_record(self, state, scores: dict) -> dict:
        train_loss = sum(self.losses) / len(self.losses) if self.losses else None
        self.losses = []
        return {"epoch": round(state.epoch or 0, 2), "train_loss": train_loss, **scores}

    def report(self, record: dict, saved: bool) -> None:
        nan = float("nan")
        rouge = " ".join(f"{k} {record.get(k, nan):.4f}" for k in ("rouge1", "rouge2", "rougeL"))
        train_loss = record["train_loss"] if record["train_loss"] is not None else nan
        logger.info(f"epoch {record['epoch']:g}: train loss {train_loss:.4f}, dev loss {record.get('loss', nan):.4f}, "
                    f"{rouge}{' (best: saved)' if saved else ''}")


def train_summarizer(
    train: str | os.PathLike,
    validation: str | os.PathLike,
    output: str | os.PathLike,
    model: str | os.PathLike,
    epochs: float = 3,
    learning_rate: float = 5e-5,
    batch_size: int = 4,
    gradient_accumulation_steps: int = 1,
    warmup_ratio: float = 0.1,
    precision: str = "fp32",
    max_source_length: int | None = None,
    max_target_length: int = 64,
    num_beams: int = 4,
    seed: int = 42,
    text_column: str = "text",
    summary_column: str = "summary",
    gradient_checkpointing: bool = False,
    weight_decay: float = 0.01,
) -> SummarizationResult:
    """Fine-tune the seq2seq model at `model` on (text, summary) pairs; keep the best dev ROUGE-L epoch."""
    start = time.perf_counter()
    require_rouge_score()  # before any training: every epoch ends with ROUGE on the dev file
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for name, value in (("epochs", epochs), ("learning_rate", learning_rate), ("batch_size", batch_size),
                        ("gradient_accumulation_steps", gradient_accumulation_steps)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    train_pairs = read_pairs(train, text_column, summary_column)
    dev_pairs = read_pairs(validation, text_column, summary_column)
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model)
    network = load_seq2seq(model)
    positions = network.config.max_position_embeddings
    max_source_length = min(max_source_length or positions, positions)
    train_set = _PairDataset(train_pairs, tokenizer, max_source_length, max_target_length)
    dev_set = _PairDataset(dev_pairs, tokenizer, max_source_length, max_target_length)
    if train_set.truncated or dev_set.truncated:
        logger.info(f"note: {train_set.truncated} training and {dev_set.truncated} dev documents are longer than "
                    f"{max_source_length} tokens and are truncated")
    if gradient_checkpointing:
        getattr(network, "activation_checkpointing_enable", network.gradient_checkpointing_enable)()
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoints = Path(tempfile.mkdtemp(prefix=".trainer-", dir=output.parent))
    save_best = _SaveBestRouge(output, tokenizer)
    steps_per_epoch = -(-len(train_set) // (batch_size * gradient_accumulation_steps))
    args = Seq2SeqTrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps, warmup_steps=warmup_ratio,  # < 1: a fraction of all steps
        weight_decay=weight_decay, bf16=precision == "bf16", fp16=precision == "fp16", eval_strategy="epoch",
        save_strategy="no", predict_with_generate=True, generation_num_beams=num_beams,
        generation_max_length=max_target_length, logging_steps=max(1, steps_per_epoch // 5), report_to=[], seed=seed,
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = Seq2SeqTrainer(
        model=network, args=args, train_dataset=train_set, eval_dataset=dev_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=network, label_pad_token_id=-100),
        processing_class=tokenizer, compute_metrics=_rouge_metric(tokenizer), callbacks=[save_best],
    )
    quiet_trainer(trainer)
    try:
        trainer.train()
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)
    best = save_best.best or {}
    result = SummarizationResult(str(output), best.get("epoch"), best, time.perf_counter() - start,
                                 save_best.history)
    if trainer.is_world_process_zero() and output.is_dir():
        (output / TRAINING_REPORT).write_text(json.dumps(asdict(result), indent=2))
    return result


def _rouge_metric(tokenizer):
    def compute(prediction):
        predictions, labels = prediction.predictions, prediction.label_ids
        predictions = np.where(predictions < 0, tokenizer.pad_token_id, predictions)
        labels = np.where(labels < 0, tokenizer.pad_token_id, labels)
        decoded = [s.strip() for s in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        references = [s.strip() for s in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        return rouge_scores(decoded, references)

    return compute
