"""The HAT family: a short encoder converted into a HAT (hierarchical attention transformer: segment-wise
and cross-segment layers over segments of a document), or a HAT checkpoint as it is, for document
classification, sequential sentence classification (one label per sentence, each sentence one
segment) and the other head kinds of `longdoc.models.hat_heads`."""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

from ..data.hat_segments import HATSegments
from ..data.hat_segments import segment_documents as segment_hat_documents
from ..data.labels import MULTI_LABEL, pad_sentence_targets
from ..errors import DataError
from ..models.hat_config import POOLINGS
from ..runtime import DEFAULT_BATCH_TOKENS, autocast_context, bf16_autocast_default, length_sorted_batches
from .base import Family, Predictions, TrainingDefaults, check_pooling, encoder_max_tokens, load_with_new_head, with_labels

logger = logging.getLogger(__name__)
HAT_MODEL_TYPE = "hierarchical-transformer"
DEFAULT_SENTENCE_SIZE = 128  # tokens per segment, [CLS] included (the published HATs')
DEFAULT_MAX_SENTENCES = {"classification": 32, "sentences": 64}  # 4096 tokens at 128; one sentence a segment
SEGMENT_OPTIONS = ("chunk_size", "stride", "chunk_pooling", "max_segments")
SEGMENTATIONS = ("greedy", "uniform")


@dataclass
class SentencePredictions:
    logits: list[np.ndarray]  # per document: (sentences read, L)
    unread: list[int]  # per document: sentences after the first max_sentences, not read (truncation)
    tokens: int = 0  # tokens read


class HATFamily(Family):
    """A HAT classifier: `HATForSequenceClassification` (segments pooled: max, first, last or attentive)
    for documents, `HATForSequentialSentenceClassification` for one label per sentence.

    A short encoder is converted into a HAT first (`convert(..., to="hat")`, into the work folder);
    a HAT checkpoint (config.model_type "hierarchical-transformer") is used as it is. How a
    document is cut into segments (`segmentation`: greedy sentences or uniform chunks; sentences
    for the sentence task) and whether documents longer than `max_sentences` segments are cut
    (`truncate_segments`) are kept in the model's config, so prediction segments as training did.
    """

    title = "HAT"
    poolings = POOLINGS

    # -- building -------------------------------------------------------------------------------

    def check_options(self, options: dict) -> None:
        """Settings that do not apply to a HAT, or are malformed, fail before anything is read."""
        check_pooling(self, options.get("pooling"))
        if options.get("pooling") is not None and options.get("head") == "sentences":
            raise ValueError("--pooling does not apply to --task sentences: every sentence is labelled from its own "
                             "segment")
        wrong = [f"--{name.replace('_', '-')}" for name in SEGMENT_OPTIONS if options.get(name) is not None]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} apply to the segment families; a HAT's segments are set by "
                             f"--max-sentence-size (tokens, [CLS] included) and --max-sentences")
        segmentation = options.get("segmentation")
        if segmentation is not None and segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation={segmentation!r}: use one of {', '.join(SEGMENTATIONS)}")
        if segmentation is not None and options.get("head") == "sentences":
            raise ValueError("--segmentation does not apply to --task sentences: each sentence is one segment")
        for name in ("max_sentences", "max_sentence_size", "max_length"):
            if options.get(name) is not None and options[name] < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {options[name]}")

    def conversion_settings(self, source: str, config, options: dict) -> dict:
        """layout, max_sentences, max_sentence_size of the HAT to convert `source` into: the options,
        else defaults that fit the source (a layout as deep as the source, every third layer
        cross-segment; 128-token segments, or the source's length when shorter; 32 segments, or 64
        for the sentence task, or --max-length / --max-sentence-size)."""
        from ..models.hat_config import default_layout

        tokenizer = AutoTokenizer.from_pretrained(source)
        size = options.get("max_sentence_size") or min(DEFAULT_SENTENCE_SIZE, encoder_max_tokens(config, tokenizer))
        count = options.get("max_sentences")
        if count is None and options.get("max_length"):
            count = math.ceil(options["max_length"] / size)
        if count is None:
            count = DEFAULT_MAX_SENTENCES[options.get("head") or "classification"]
            count = max(1, min(count, getattr(config, "max_position_embeddings", count + 2) - 2))  # its position rows
        layout = options.get("layout") or default_layout(config.num_hidden_layers)
        return dict(layout=layout, max_sentences=count, max_sentence_size=size)

    def check_documents(self, source, inputs, sources, options):
        """The sentence task: a document with more sentences than the model will read is an error
        (without truncation) found before the encoder is converted."""
        if options.get("head") != "sentences" or options.get("truncate"):
            return
        config = AutoConfig.from_pretrained(source)
        if config.model_type == HAT_MODEL_TYPE:
            limit = config.max_sentences
        else:
            limit = self.conversion_settings(source, config, options)["max_sentences"]
        _check_sentence_counts([len(units) for units in inputs], limit, sources)

    def _check_hat_source(self, source: str, config, options: dict) -> None:
        """A HAT source keeps its geometry: options that would change it are errors."""
        from ..models.hat_config import layout_string, parse_layout

        have = dict(layout=config.layout, max_sentences=config.max_sentences,
                    max_sentence_size=config.max_sentence_size)
        wanted = {k: options.get(k) for k in have if options.get(k) is not None}
        if "layout" in wanted:
            wanted["layout"] = layout_string(parse_layout(wanted["layout"]))
        if options.get("max_length") is not None:
            wanted["max_length"] = options["max_length"]
        differ = [f"--{k.replace('_', '-')} {v}" for k, v in wanted.items() if have.get(k) != v]
        if differ:
            raise ValueError(
                f"{source} is already a HAT ({config.max_sentences} segments of {config.max_sentence_size} tokens, "
                f"layout {config.layout}); {', '.join(differ)} cannot change that: leave it out, or train from the "
                f"short encoder it came from so that it is converted with these settings"
            )

    def _build(self, head, source, options):
        options = {**options, "head": head}
        self.check_options(options)
        config = AutoConfig.from_pretrained(source)
        hat_source = source
        if config.model_type == HAT_MODEL_TYPE:
            self._check_hat_source(source, config, options)
        else:
            from ..convert import convert

            settings = self.conversion_settings(source, config, options)
            hat_source = os.path.join(options["work_dir"], "hat-encoder")
            count, size = settings["max_sentences"], settings["max_sentence_size"]
            logger.info(f"converting {source} into a HAT of up to {count} segments of {size} tokens ({count * size} "
                        f"tokens, layout {settings['layout']}) at {hat_source} ...")
            logger.info(convert(source, hat_source, to="hat", **settings))
        tokenizer = AutoTokenizer.from_pretrained(hat_source)
        fields = {**(options.get("head_config") or {}), **(options.get("config_overrides") or {})}
        model_class = head_classes()[head]
        if head == "classification":
            fields["pool_empty_segments"] = False  # a document's prediction must not depend on its batch
            if options.get("pooling"):
                fields["segment_pooling"] = options["pooling"]
        # a HAT with a head as the source may have another one: it is replaced
        model = load_with_new_head(model_class, hat_source, **fields)
        model.config.architectures = [model_class.__name__]  # what it is now (the source's until saved)
        model.config.segmentation = "sentences" if head == "sentences" else options.get("segmentation") or "greedy"
        model.config.truncate_segments = bool(options.get("truncate"))
        if options.get("threshold") is not None:
            model.config.threshold = options["threshold"]
        return model, tokenizer

    def _load(self, model_dir, head, fields, dtype):
        return head_classes()[head].from_pretrained(model_dir, dtype=dtype)

    def _train_hint(self, heads):
        return " (or `--task sentences` for one label per sentence)" if "classification" in heads else ""

    def defaults(self, frozen):
        if frozen:
            raise ValueError("--freeze-encoder works with the segment families (segment, chunk-pool, truncate); "
                             "a HAT is trained whole")
        return TrainingDefaults(epochs=4, learning_rate=5e-5, batch_size=4, head_learning_rate=1e-3)

    # -- segments -------------------------------------------------------------------------------

    def segments(self, model, tokenizer, texts, sources: list[str] | None = None) -> list[HATSegments]:
        """Each document as HAT segments, cut the way the model was trained to cut them. A document
        with more than max_sentences segments is an error unless the model truncates (then a
        warning says how much is cut)."""
        config = model.config
        if _sentence_model(model):
            return self.sentence_segments(model, tokenizer, texts, sources)
        size, limit = config.max_sentence_size, config.max_sentences
        strategy = getattr(config, "segmentation", None) or "greedy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the cut documents are reported below, with what to do
            documents = segment_hat_documents(texts, tokenizer, size, limit, strategy, truncate=True)
        cut = [i for i, d in enumerate(documents) if d.cut_segments]
        if cut and not getattr(config, "truncate_segments", False):
            first = documents[cut[0]]
            needed = first.num_segments + first.cut_segments
            raise DataError(
                f"{len(cut)} of {len(documents)} documents need more than the model's {limit} segments of {size} "
                f"tokens (max_sentences), e.g. {_where(sources, cut[0])} needs {needed}: "
                f"train with a larger --max-sentences (or --max-length), or pass --truncate (truncate=True) to read "
                f"only the first {limit} segments of each, with a warning saying how much is cut"
            )
        if cut:
            cut_tokens = sum(documents[i].cut_tokens for i in cut)
            share = 100 * cut_tokens / max(1, cut_tokens + sum(documents[i].tokens for i in cut))
            warnings.warn(
                f"{len(cut)} of {len(documents)} documents need more than {limit} segments of {size} tokens "
                f"(max_sentences): only their first {limit} segments are read; "
                f"{sum(documents[i].cut_segments for i in cut)} segments and {cut_tokens} tokens are cut ({share:.0f}% "
                f"of those documents). A model with a larger --max-sentences reads them whole",
                stacklevel=2,
            )
        return documents

    def sentence_segments(self, model, tokenizer, documents, sources=None) -> list[HATSegments]:
        """One segment per sentence. A sentence longer than a segment keeps its first tokens (a
        warning counts them); a document with more sentences than max_sentences is an error unless
        the model truncates: then only its first max_sentences are read (and labelled, and scored)."""
        config = model.config
        size, limit = config.max_sentence_size, config.max_sentences
        documents = [list(d) for d in documents]
        counts = [len(d) for d in documents]
        over = [i for i, n in enumerate(counts) if n > limit]
        if not getattr(config, "truncate_segments", False):
            _check_sentence_counts(counts, limit, sources)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segmented = segment_hat_documents(documents, tokenizer, size, max([1, *counts]), "units", truncate=False)
        long_sentences, cut_tokens = 0, 0
        for document, result in zip(documents, segmented):
            if not result.cut_tokens:
                continue
            cut_tokens += result.cut_tokens
            full = [i for i in range(len(document)) if sum(result.attention_mask[i * size:(i + 1) * size]) == size]
            lengths = tokenizer([document[i] for i in full], add_special_tokens=False)["input_ids"]
            long_sentences += sum(len(ids) > size - 1 for ids in lengths)
        if long_sentences:
            warnings.warn(
                f"{long_sentences} {'sentence is' if long_sentences == 1 else 'sentences are'} longer than a segment "
                f"({size - 1} tokens after [CLS]): only the first {size - 1} tokens are read ({cut_tokens} tokens cut "
                f"in all); a model with a larger "
                f"--max-sentence-size reads them whole",
                stacklevel=2,
            )
        if over:
            warnings.warn(
                f"{len(over)} of {len(documents)} documents have more than {limit} sentences (max_sentences): only "
                f"their first {limit} are read; the other {sum(counts[i] - limit for i in over)} sentences are not "
                f"labelled and not scored. A model with a larger --max-sentences reads them all",
                stacklevel=2,
            )
            segmented = [_first_segments(result, limit) if result.num_segments > limit else result
                         for result in segmented]
        return segmented

    # -- training -------------------------------------------------------------------------------

    def training_items(self, model, tokenizer, texts, targets, options):
        documents = self.segments(model, tokenizer, texts, options.get("sources"))
        sentences = _sentence_model(model)
        items = []
        for document, target in zip(documents, targets):
            labels = list(target[: document.num_segments]) if sentences else target
            items.append({"input_ids": document.input_ids, "attention_mask": document.attention_mask, "labels": labels})
        return items

    def head_warmup_defaults(self) -> TrainingDefaults:
        return TrainingDefaults(epochs=40, learning_rate=1e-3, batch_size=16)

    @torch.inference_mode()
    def head_warmup_items(self, model, tokenizer, items, options):
        """Document classification: each document's segment heads (the first tokens' states after the
        last layer) from the encoder as it is, so the pooler and classifier first learn on them alone;
        the sentence task has no such stage."""
        from tqdm.auto import tqdm

        if _sentence_model(model):
            return None
        bf16 = options.get("bf16")
        bf16 = bf16_autocast_default(model.device) if bf16 is None else bf16
        collate = self.collate(model, tokenizer)
        size = model.config.max_sentence_size
        batches = length_sorted_batches([len(item["input_ids"]) for item in items], DEFAULT_BATCH_TOKENS)
        states = [None] * len(items)
        was_training = model.training
        model.eval()
        try:
            with autocast_context(model.device, bf16):
                for batch in tqdm(batches, desc=options.get("progress"), disable=options.get("progress") is None):
                    inputs = collate([items[i] for i in batch])
                    inputs.pop("labels", None)
                    out = model.hi_transformer(**{k: v.to(model.device) for k, v in inputs.items()})
                    heads = out.last_hidden_state[:, ::size].float().cpu()  # (b, N, C)
                    for row, index in enumerate(batch):
                        states[index] = heads[row, : len(items[index]["input_ids"]) // size].clone()
        finally:
            model.train(was_training)
        return [{"segment_states": state, "labels": item["labels"]} for state, item in zip(states, items)]

    def collate(self, model, tokenizer):
        config = model.config
        pad, size = tokenizer.pad_token_id, config.max_sentence_size
        sentences = _sentence_model(model)
        multi_label = config.problem_type == MULTI_LABEL

        def collate(items):
            if "segment_states" in items[0]:  # head warm-up: cached segment heads
                counts = torch.tensor([len(item["segment_states"]) for item in items])
                real = torch.arange(int(counts.max()))[None, :] < counts[:, None]  # (B, N)
                states = torch.zeros(len(items), real.shape[1], items[0]["segment_states"].shape[-1])
                states[real] = torch.cat([item["segment_states"] for item in items])
                return with_labels({"segment_states": states, "segment_mask": real}, items)
            longest = max(len(item["input_ids"]) for item in items)
            ids = torch.full((len(items), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(items), longest), dtype=torch.long)
            for row, item in enumerate(items):
                ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"], dtype=torch.long)
                mask[row, : len(item["attention_mask"])] = torch.tensor(item["attention_mask"], dtype=torch.long)
            batch = {"input_ids": ids, "attention_mask": mask}
            if not sentences or "labels" not in items[0]:
                return with_labels(batch, items)
            count = longest // size
            labels = [pad_sentence_targets(item["labels"], count, multi_label, config.num_labels) for item in items]
            batch["labels"] = torch.tensor(labels, dtype=torch.float if multi_label else torch.long)
            return batch

        return collate

    # -- prediction -----------------------------------------------------------------------------

    @torch.inference_mode()
    def _logits(self, model, tokenizer, documents: list[HATSegments], bf16, progress) -> list[torch.Tensor]:
        """Each document's logits, in length-sorted batches."""
        from tqdm.auto import tqdm

        from ..data.hat_segments import batch_segments

        lengths = [len(d.input_ids) for d in documents]
        if _sentence_model(model) or not model.config.pool_empty_segments:
            batches = length_sorted_batches(lengths, DEFAULT_BATCH_TOKENS)
        else:  # the reference's pooling reads the empty segments that pad a shorter document: batch only
            # documents of as many segments, so that a document's scores do not depend on its batch
            groups: dict[int, list[int]] = {}
            for index, document in enumerate(documents):
                groups.setdefault(document.num_segments, []).append(index)
            batches = [[group[i] for i in batch] for group in groups.values()
                       for batch in length_sorted_batches([lengths[i] for i in group], DEFAULT_BATCH_TOKENS)]
        bf16 = bf16_autocast_default(model.device) if bf16 is None else bf16
        logits = [None] * len(documents)
        model.eval()
        with autocast_context(model.device, bf16):
            for batch in tqdm(batches, desc=progress, disable=progress is None):
                inputs = batch_segments([documents[i] for i in batch], tokenizer.pad_token_id)
                out = model(**{k: v.to(model.device) for k, v in inputs.items()})
                for row, index in enumerate(batch):
                    logits[index] = out.logits[row].float().cpu()
        return logits

    def predict(self, model, tokenizer, texts, explain=False, bf16=None, progress=None):
        if explain:
            raise ValueError("explanations are not available for HAT classifiers (their pooled segments carry no "
                             "per-label weights); the segment and chunk-pool families explain their predictions")
        if _sentence_model(model):
            raise DataError("this is a sentence classifier (one label per sentence): use SentenceClassifier "
                            "(longdoc.pipelines) or `longdoc predict`, which give a label per sentence")
        documents = self.segments(model, tokenizer, texts)
        logits = self._logits(model, tokenizer, documents, bf16, progress)
        return Predictions(logits=torch.stack(logits).numpy(), segment_spans=[d.char_spans for d in documents],
                           tokens=sum(d.tokens for d in documents))

    def predict_sentences(self, model, tokenizer, documents: list[list[str]], bf16=None, progress=None,
                          sources: list[str] | None = None) -> SentencePredictions:
        """Per document, the logits of the sentences read (all of them, or with truncation the first
        max_sentences) and how many were not read."""
        segmented = self.sentence_segments(model, tokenizer, documents, sources)
        logits = self._logits(model, tokenizer, segmented, bf16, progress)
        return SentencePredictions(
            logits=[row[: d.num_segments].numpy() for row, d in zip(logits, segmented)],
            unread=[len(units) - d.num_segments for units, d in zip(documents, segmented)],
            tokens=sum(d.tokens for d in segmented),
        )


def head_classes() -> dict:
    """head kind -> HAT model class."""
    from .. import models

    return {"classification": models.HATForSequenceClassification,
            "sentences": models.HATForSequentialSentenceClassification, "spans": models.HATForQuestionAnswering,
            "tokens": models.HATForTokenClassification, "choices": models.HATForMultipleChoice,
            "masked-lm": models.HATForMaskedLM}


def _sentence_model(model) -> bool:
    from ..models import HATForSequentialSentenceClassification

    # an exported model's onnxruntime stand-in (longdoc.export) is no torch module: it names its head kind
    return isinstance(model, HATForSequentialSentenceClassification) or getattr(model, "head", None) == "sentences"


def _check_sentence_counts(counts: list[int], limit: int, sources: list[str] | None) -> None:
    over = [i for i, n in enumerate(counts) if n > limit]
    if over:
        raise DataError(
            f"{len(over)} of {len(counts)} documents have more sentences than the model's {limit} (max_sentences), "
            f"e.g. {_where(sources, over[0])} has {counts[over[0]]}: train with a larger --max-sentences, or pass "
            f"--truncate (truncate=True) to read only the first {limit} sentences of each (the others are then "
            f"neither labelled nor scored)"
        )


def _where(sources: list[str] | None, index: int) -> str:
    return sources[index] if sources else f"document {index + 1}"


def _first_segments(document: HATSegments, count: int) -> HATSegments:
    """The document's first `count` segments (the rest counted as cut)."""
    size = document.segment_size
    kept_tokens = sum(document.attention_mask[: count * size]) - count  # CLS excluded
    return replace(document, input_ids=document.input_ids[: count * size],
                   attention_mask=document.attention_mask[: count * size], num_segments=count,
                   char_spans=document.char_spans[:count], cut_segments=document.num_segments - count,
                   cut_tokens=document.cut_tokens + document.tokens - kept_tokens, tokens=kept_tokens)

