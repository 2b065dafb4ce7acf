"""Summarization pipeline: texts in, summaries out (beam search with `transformers`' generate()).

    from longdoc import Summarizer
    summarizer = Summarizer.from_pretrained("my-lsg-bart")
    for summary in summarizer.summarize(texts, num_beams=4):
        print(summary)
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterable, Iterator

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer

from .data.pairs import read_pairs
from .tasks.summarization import lead_baseline, rouge_scores

logger = logging.getLogger(__name__)

GENERATION_OPTIONS = ("num_beams", "length_penalty", "no_repeat_ngram_size", "min_length", "max_length")
# LSG sparsity whose outputs depend on the padding a batch brings (as in lsg-converter, windows of padding only
# are attended): such models summarize one document at a time, so that no summary depends on its batch-mates
PADDING_DEPENDENT_SPARSITY = {"bos_pooling"}


def load_seq2seq(model_dir: str | os.PathLike, dtype=None):
    """The LSG-BART (or any `transformers` seq2seq) model saved in `model_dir`."""
    from . import models

    config = AutoConfig.from_pretrained(model_dir)
    if not config.is_encoder_decoder:
        raise ValueError(f"{model_dir} holds a {config.model_type} encoder, not an encoder-decoder: summarize with an "
                         f"LSG-BART model (`longdoc convert --to lsg BART OUT`, or warm-start one from an encoder "
                         f"with `longdoc convert --to lsg ENCODER OUT --seq2seq`)")
    names = config.architectures or []
    if any(name.startswith("LSGBart") for name in names) or hasattr(config, "block_size"):
        return models.LSGBartForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=dtype)


class Summarizer:
    def __init__(self, model, tokenizer, batch_size: int = 2, max_source_length: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if getattr(model.config, "sparsity_type", None) in PADDING_DEPENDENT_SPARSITY and batch_size > 1:
            logger.info("%s sparsity depends on the padding of a batch: summarizing one document at a time",
                        model.config.sparsity_type)
            self.batch_size = 1
        positions = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        self.max_source_length = min(max_source_length or positions, positions)
        self.truncated = 0  # documents cut to max_source_length so far

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, batch_size: int = 2, max_source_length: int | None = None,
                        dtype=None) -> "Summarizer":
        return cls(load_seq2seq(model_dir, dtype), AutoTokenizer.from_pretrained(model_dir), batch_size,
                   max_source_length)

    def generation_settings(self, **options) -> dict:
        """The model's generation defaults, overridden by the options that are given."""
        unknown = set(options) - set(GENERATION_OPTIONS)
        if unknown:
            raise ValueError(f"unknown generation options {sorted(unknown)}; use {', '.join(GENERATION_OPTIONS)}")
        settings = {k: v for k, v in options.items() if v is not None}
        if settings.get("num_beams", 1) < 1:
            raise ValueError("num_beams must be at least 1")
        if "min_length" in settings and "max_length" in settings and settings["min_length"] > settings["max_length"]:
            raise ValueError(f"min_length ({settings['min_length']}) is larger than max_length ({settings['max_length']})")
        return settings

    def summarize(self, texts: Iterable[str], **options) -> Iterator[str]:
        """Summaries of `texts`, in order, produced a batch at a time (results stream as they are ready)."""
        settings = self.generation_settings(**options)
        batch = []
        for text in texts:
            batch.append(text)
            if len(batch) == self.batch_size:
                yield from self._summarize_batch(batch, settings)
                batch = []
        if batch:
            yield from self._summarize_batch(batch, settings)

    def _summarize_batch(self, texts: list[str], settings: dict) -> list[str]:
        full = self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        self.truncated += sum(len(ids) > self.max_source_length for ids in full)
        # padding on the right whatever the tokenizer's default: positions count from the first token, so left
        # padding would move a short document's tokens by the length of its longest batch-mate
        inputs = self.tokenizer(texts, truncation=True, max_length=self.max_source_length, padding=True,
                                padding_side="right", return_tensors="pt", return_token_type_ids=False)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        with torch.inference_mode():
            tokens = self.model.generate(**inputs, **settings)
        return [s.strip() for s in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]

    def evaluate(self, path: str | os.PathLike, text_column: str = "text", summary_column: str = "summary",
                 progress: bool = True, **options) -> dict:
        """ROUGE-1/2/L/Lsum of the model and of the lead baseline (first sentence) on a file of pairs."""
        pairs = read_pairs(path, text_column, summary_column)
        start = time.perf_counter()
        predictions = []
        with tqdm(total=len(pairs), desc="summarizing", unit="doc", disable=not progress) as bar:
            for summary in self.summarize((p.text for p in pairs), **options):
                predictions.append(summary)
                bar.update()
        seconds = time.perf_counter() - start
        references = [p.summary for p in pairs]
        return {
            "documents": len(pairs),
            "rouge": rouge_scores(predictions, references),
            "lead_baseline": rouge_scores([lead_baseline(p.text) or p.text[:200] for p in pairs], references),
            "truncated_documents": self.truncated,
            "max_source_length": self.max_source_length,
            "seconds": seconds,
            "documents_per_second": len(pairs) / seconds if seconds else None,
            "examples": [{"id": p.id or p.source, "reference": p.summary, "prediction": s}
                         for p, s in list(zip(pairs, predictions))[:5]],
        }
