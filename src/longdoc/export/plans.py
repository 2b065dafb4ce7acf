"""What each family exports: its graphs (a module to trace, its inputs and outputs, an example input
and which axes are dynamic) and the cases every export is checked on (inputs at several lengths
that cross the family's window / block / segment boundaries, with padding and global tokens, called
on the PyTorch model and on the exported one alike).

The example input a graph is traced at is never one of the checked ones: a graph whose shapes were
frozen at the traced length fails its check.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import numpy as np
import torch
from torch import nn

from ..attention.banded import block_rows
from .hat_graph import HATGraph
from .hat_graph import INPUTS as HAT_INPUTS
from .hat_graph import OUTPUTS as HAT_OUTPUTS
from .longformer_graph import INPUTS as LONGFORMER_INPUTS
from .longformer_graph import OUTPUTS as LONGFORMER_OUTPUTS
from .longformer_graph import LongformerGraph
from .onnx_model import OnnxHAT, OnnxLongformer, OnnxSegmentClassifier
from .segment_graph import (ENCODER_INPUTS, ENCODER_OUTPUTS, HEAD_INPUTS, SegmentEncoderGraph, SegmentHeadGraph,
                            head_outputs)


@dataclass
class Graph:
    """One ONNX file: `module(*example)` traced; `axes`: input name -> a name per axis (None: fixed)."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    example: tuple[torch.Tensor, ...]
    axes: dict[str, tuple[str | None, ...]]
    quantize: bool = True  # whether --quantize int8 quantizes it (else its int8 graph is the fp32 one)
    tracing: Callable[[], ContextManager] = contextlib.nullcontext  # the context it is traced in


@dataclass
class Case:
    """One check: `getattr(model, call)(**kwargs)` on both models; `fields` of the outputs compared."""

    label: str
    kwargs: dict
    fields: tuple[str, ...]
    call: str = "__call__"
    lengths: tuple[int, ...] = field(default=())  # the lengths it covers, for the manifest
    unit: str = "tokens"  # what they count: "tokens", or "segments" (segment vectors of a document)


class TokenSampler:
    """Random token ids of a tokenizer's ordinary vocabulary (no special tokens), reproducibly."""

    def __init__(self, tokenizer, vocab_size: int, seed: int = 0):
        specials = set(tokenizer.all_special_ids)
        self.ordinary = np.array([i for i in range(min(vocab_size, len(tokenizer))) if i not in specials])
        self.rng = np.random.default_rng(seed)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id

    def ids(self, count: int) -> np.ndarray:
        return self.rng.choice(self.ordinary, size=count)

    def rows(self, lengths: list[int], width: int, question: int | None = None) -> dict[str, torch.Tensor]:
        """A padded batch of `[first] words [sep]` rows of the given real lengths; with `question`, a
        separator after that many tokens too (a question / context pair) and token types 1 after it."""
        ids = np.full((len(lengths), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(lengths), width), dtype=np.int64)
        types = np.zeros((len(lengths), width), dtype=np.int64)
        for row, n in enumerate(lengths):
            ids[row, :n] = self.ids(n)
            if self.first is not None:
                ids[row, 0] = self.first
            if n > 1 and self.sep is not None:
                ids[row, n - 1] = self.sep
            if question is not None and question < n - 1 and self.sep is not None:
                ids[row, question] = self.sep
                types[row, question + 1 : n] = 1
            mask[row, :n] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                "token_type_ids": torch.from_numpy(types)}


def _row_lengths(width: int, rows: int) -> list[int]:
    """A full row, then shorter ones (padding): width, ~60%, ~30% (at least 2 tokens each)."""
    return [max(2, round(width * share)) for share in (1.0, 0.6, 0.3)[:rows]]


# --- Longformer ------------------------------------------------------------------------------------


class LongformerPlan:
    stand_in = OnnxLongformer

    def graphs(self, model, tokenizer, head):
        config = model.config
        width = min(config.max_tokens, self._windows(config)[0] * 3 + 5)
        example = TokenSampler(tokenizer, config.vocab_size, seed=99).rows([width, width - 3], width)
        glob = torch.zeros_like(example["input_ids"])
        glob[:, 0] = 1
        glob[1, 1:4] = 1
        args = (example["input_ids"], example["attention_mask"], glob, example["token_type_ids"])
        axes = {name: ("batch", "tokens") for name in LONGFORMER_INPUTS}
        return [Graph("model", LongformerGraph(model, head), LONGFORMER_INPUTS, LONGFORMER_OUTPUTS[head], args, axes)]

    @staticmethod
    def _windows(config) -> tuple[int, int]:
        """(largest one-sided window, its block rows)."""
        w = max(window.one_sided for window in config.layer_windows())
        return w, block_rows(w)

    def lengths(self, config) -> list[int]:
        """2 tokens, less than a block, just over the window, over two windows and not a whole number of
        blocks, the longest the model reads."""
        w, b = self._windows(config)
        wanted = (2, max(2, b - 1), 2 * w + 1, 4 * w + b // 2 + 3, config.max_tokens)
        return sorted({min(config.max_tokens, n) for n in wanted})

    def cases(self, model, tokenizer, head):
        config = model.config
        sampler = TokenSampler(tokenizer, config.vocab_size, seed=1)
        fields = LONGFORMER_OUTPUTS[head]
        w, b = self._windows(config)
        cases = []
        for width in self.lengths(config):
            rows = 3 if 2 < width <= 4096 else 2  # two rows at the longest lengths: the checks' cost
            batch = sampler.rows(_row_lengths(width, rows), width, question=min(4, width - 2))
            glob = torch.zeros_like(batch["input_ids"])
            glob[:, 0] = 1  # row 0: the first token
            glob[1, : min(5, width)] = 1  # row 1: a question's worth, and one token in its middle
            glob[1, width // 2] = 1
            if rows > 2:
                glob[2] = 0  # row 2: none at all
            cases.append(Case(f"{rows} rows of {width} tokens (padding; globals 1, 6 and 0)",
                              {**batch, "global_attention_mask": glob}, fields, lengths=(width,)))
        width = min(config.max_tokens, 2 * w + b + 7)
        batch = sampler.rows([width], width)
        glob = torch.zeros_like(batch["input_ids"])
        glob[0, : min(width, b + 3)] = 1  # more globals than a block has rows
        cases.append(Case(f"1 row of {width} tokens, {int(glob.sum())} globals",
                          {**batch, "global_attention_mask": glob}, fields, lengths=(width,)))
        width = min(config.max_tokens, w + 3)
        batch = sampler.rows(_row_lengths(width, 2), width, question=min(3, width - 2))
        cases.append(Case(f"2 rows of {width} tokens, the model's default global attention", batch, fields,
                          lengths=(width,)))
        return cases


# --- HAT --------------------------------------------------------------------------------------------


class HATPlan:
    stand_in = OnnxHAT

    def graphs(self, model, tokenizer, head):
        config = model.config
        size = config.max_sentence_size
        count = min(config.max_sentences, 3)
        example = self._batch(TokenSampler(tokenizer, config.vocab_size, seed=99), size,
                              [count, max(1, count - 1)], count)
        args = tuple(example[name] for name in HAT_INPUTS)
        axes = {name: ("batch", "tokens") for name in HAT_INPUTS}
        return [Graph("model", HATGraph(model, head), HAT_INPUTS, HAT_OUTPUTS[head], args, axes)]

    @staticmethod
    def _batch(sampler: TokenSampler, size: int, segments: list[int], width: int) -> dict[str, torch.Tensor]:
        """Rows of `segments[r]` segments each, padded with empty segments to `width`: every segment
        [CLS] + tokens + padding (its fill varies), an empty one all padding."""
        rows = len(segments)
        ids = torch.full((rows, width * size), sampler.pad, dtype=torch.long)
        mask = torch.zeros((rows, width * size), dtype=torch.long)
        for row, count in enumerate(segments):
            for segment in range(count):
                fill = max(1, size - (segment * 7 + row * 3) % size)  # tokens in it, [CLS] included
                start = segment * size
                ids[row, start : start + fill] = torch.from_numpy(sampler.ids(fill))
                if sampler.first is not None:
                    ids[row, start] = sampler.first
                mask[row, start : start + fill] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}

    def cases(self, model, tokenizer, head):
        config = model.config
        sampler = TokenSampler(tokenizer, config.vocab_size, seed=1)
        fields = HAT_OUTPUTS[head]
        limit = config.max_sentences
        cases = []
        for width in sorted({1, min(2, limit), min(5, limit), limit}):
            segments = [width, max(1, (width + 1) // 2), 1] if width > 1 else [1]  # one row of one segment too
            batch = self._batch(sampler, config.max_sentence_size, segments, width)
            cases.append(Case(f"{len(segments)} rows of up to {width} segments ({', '.join(map(str, segments))})",
                              batch, fields, lengths=(width * config.max_sentence_size,)))
        return cases


# --- segment classifier -------------------------------------------------------------------------------


class SegmentPlan:
    stand_in = OnnxSegmentClassifier

    def graphs(self, model, tokenizer, head):
        config = model.config
        hidden = config.hidden_size
        sampler = TokenSampler(tokenizer, config.encoder["vocab_size"], seed=99)
        tokens = sampler.rows([17, 11, 6], 17)
        segments = min(config.max_segments, 3)
        vectors = torch.randn(2, segments, hidden, generator=torch.Generator().manual_seed(99))
        mask = torch.ones(2, segments, dtype=torch.bool)
        mask[1, 1:] = False
        segment_axis = "segments" if config.max_segments > 1 else None  # truncate reads one segment
        return [
            Graph("segment_encoder", SegmentEncoderGraph(model), ENCODER_INPUTS, ENCODER_OUTPUTS,
                  (tokens["input_ids"], tokens["attention_mask"]),
                  {name: ("segments", "tokens") for name in ENCODER_INPUTS},
                  tracing=lambda: eager_attention(model.encoder)),
            # the head is a few small products on fp32 vectors: int8 would save nothing and its folded probe's
            # weights (divided by the features' spread) lose most of their precision in int8
            Graph("segment_head", SegmentHeadGraph(model), HEAD_INPUTS, head_outputs(config.method), (vectors, mask),
                  {"segment_embeddings": ("batch", segment_axis, None), "segment_mask": ("batch", segment_axis)},
                  quantize=False),
        ]

    def cases(self, model, tokenizer, head):
        config = model.config
        sampler = TokenSampler(tokenizer, config.encoder["vocab_size"], seed=1)
        longest = config.chunk_size + sum(1 for i in (tokenizer.cls_token_id, tokenizer.sep_token_id) if i is not None)
        cases = []
        for count, width in ((1, 2), (4, longest), (6, 9)):
            batch = sampler.rows([_row_lengths(width, 3)[i % 3] for i in range(count)], width)
            cases.append(Case(f"{count} segments of up to {width} tokens", {
                "input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, ("self",),
                call="encode_segments", lengths=(width,)))
        fields = ("logits", "label_attentions" if config.method == "segment" else "segment_logits")
        generator = torch.Generator().manual_seed(1)
        limit = config.max_segments
        for counts in ([1], [min(5, limit), min(3, limit), 1], [limit, 1]):
            width = max(counts)
            vectors = torch.randn(len(counts), width, config.hidden_size, generator=generator)
            mask = torch.arange(width)[None, :] < torch.tensor(counts)[:, None]
            cases.append(Case(f"{len(counts)} documents of {', '.join(map(str, counts))} segment vectors",
                              {"segment_embeddings": vectors, "segment_mask": mask, "output_attentions": True},
                              fields, lengths=(width,), unit="segments"))
        counts = [min(3, limit), 1]
        batch = sampler.rows([longest, 7, longest, 5][: sum(counts)], longest)
        mask = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]
        cases.append(Case(f"segment token ids of 2 documents ({counts[0]} and 1 segments), both graphs",
                          {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                           "segment_mask": mask, "output_attentions": True}, fields, lengths=(max(counts),),
                          unit="segments"))
        return cases


@contextlib.contextmanager
def eager_attention(encoder):
    """A transformers encoder traced with its "eager" attention (matmul, mask, softmax) instead of SDPA,
    whose traced form adds NaN guards over every score (`isnan` and `where`): onnxruntime ran the
    MiniLM encoder twice as fast without them. The checks compare the graph with the model as it runs
    (SDPA)."""
    switch = getattr(encoder, "set_attn_implementation", None)
    before = getattr(encoder.config, "_attn_implementation", None)
    if switch is None or before in (None, "eager"):
        yield
        return
    switch("eager")
    try:
        yield
    finally:
        switch(before)


PLANS = {"longformer": LongformerPlan(), "hat": HATPlan(), "segment": SegmentPlan(), "chunk-pool": SegmentPlan(),
         "truncate": SegmentPlan()}


def model_config(folder, family: str, head: str):
    """The config of an exported model, as the family's own model class reads it (config.json)."""
    from ..families import get_family
    from ..families.base import head_model_class

    if family == "hat":
        from ..families.hat import head_classes

        model_class = head_classes()[head]
    elif family in ("segment", "chunk-pool", "truncate"):
        from ..models.segment_classifier import SegmentClassifier as model_class
    else:
        from transformers import AutoConfig

        sequence_family = get_family(family)
        model_class = head_model_class(sequence_family.head_classes(AutoConfig.from_pretrained(folder)), head, family)
    return model_class.config_class.from_pretrained(folder)
