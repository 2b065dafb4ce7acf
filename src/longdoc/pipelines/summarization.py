"""Summarization pipeline: texts in, summaries out (beam search with `transformers`' generate()).

    from longdoc import Summarizer
    summarizer = Summarizer.from_pretrained("my-lsg-bart")   # any seq2seq model folder
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
from transformers import AutoTokenizer

from ..data.pairs import read_pairs
from ..metrics.summarization import lead_baseline, rouge_scores
from .base import Pipeline

logger = logging.getLogger(__name__)

GENERATION_OPTIONS = ("num_beams", "length_penalty", "no_repeat_ngram_size", "min_length", "max_length")
# LSG sparsity whose outputs depend on the padding a batch brings (as in lsg-converter, windows of padding only
# are attended): such models summarize one document at a time, so that no summary depends on its batch-mates
PADDING_DEPENDENT_SPARSITY = {"bos_pooling"}


class Summarizer(Pipeline):
    """An encoder-decoder (LSG-BART, or any `transformers` seq2seq model) with its tokenizer: texts in,
    summaries out, a batch of `batch_size` documents at a time."""

    heads = ("seq2seq",)
    what = "summarizer"
    train_hint = "longdoc train --task summarization"

    def __init__(self, model, tokenizer, batch_size: int = 2, max_source_length: int | None = None, family=None):
        super().__init__(model, tokenizer, family)
        self.batch_size = batch_size
        if getattr(model.config, "sparsity_type", None) in PADDING_DEPENDENT_SPARSITY and batch_size > 1:
            logger.info("%s sparsity depends on the padding of a batch: summarizing one document at a time",
                        model.config.sparsity_type)
            self.batch_size = 1
        positions = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        self.max_source_length = min(max_source_length or positions, positions)
        self.truncated = 0  # documents cut to max_source_length so far

    @classmethod
    def load(cls, model_dir: str, dtype=None):
        """Any seq2seq model folder (not only LSG's); an encoder is refused, saying how to make a summarizer."""
        from ..families import get_family

        family = get_family("lsg")
        return family.load(model_dir, cls.heads, dtype=dtype), AutoTokenizer.from_pretrained(model_dir), family

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, batch_size: int = 2, max_source_length: int | None = None,
                        dtype=None, device: str | None = None) -> "Summarizer":
        return super().from_pretrained(model_dir, device=device, dtype=dtype, batch_size=batch_size,
                                       max_source_length=max_source_length)

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
                yield from super().predict(batch, **settings)
                batch = []
        if batch:
            yield from super().predict(batch, **settings)

    def predict(self, texts: str | Iterable[str], **options) -> list[str]:
        """The summaries of `texts` (a text alone is one document), as a list."""
        return list(self.summarize([texts] if isinstance(texts, str) else texts, **options))

    def preprocess(self, texts: list[str], **options) -> dict:
        """Token ids of a batch, each text cut to max_source_length (counted in `truncated`)."""
        full = self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        self.truncated += sum(len(ids) > self.max_source_length for ids in full)
        # padding on the right whatever the tokenizer's default: positions count from the first token, so left
        # padding would move a short document's tokens by the length of its longest batch-mate
        inputs = self.tokenizer(texts, truncation=True, max_length=self.max_source_length, padding=True,
                                padding_side="right", return_tensors="pt", return_token_type_ids=False)
        return {k: v.to(self.model.device) for k, v in inputs.items()}

    def forward(self, inputs: dict, **settings) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.generate(**inputs, **settings)

    def postprocess(self, tokens: torch.Tensor, inputs: dict, **settings) -> list[str]:
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
