"""What the families that read a document as one token sequence (Longformer, LSG) share: a short
encoder converted into the family's architecture first (unless the source is already one of its
checkpoints), the head class of each head kind, and classifier features that are the document's
tokens up to the model's length."""

from __future__ import annotations

import logging
import os

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer

from ..models.segment_encoding import pad_segments
from ..runtime import DEFAULT_BATCH_TOKENS, autocast_context, bf16_autocast_default, length_sorted_batches
from .base import Family, Predictions, TrainingDefaults, head_model_class, load_with_new_head, with_labels

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 4096  # tokens of a converted model when --max-length is not given


class SequenceFamily(Family):
    """A family of whole-sequence models; subclasses say which checkpoints are theirs, how a short one
    is converted, and their model class for each head kind."""

    target: str  # the `longdoc convert --to` target
    a_title: str  # "a Longformer": its models in a sentence

    def is_own(self, config) -> bool:
        """Whether a checkpoint of this config is already of this family (used as it is)."""
        raise NotImplementedError

    def head_classes(self, config) -> dict:
        """head kind -> model class for a checkpoint of this family with this config."""
        raise NotImplementedError

    def conversion_settings(self, max_length: int, options: dict) -> dict:
        return {}

    def converted(self, source: str, options: dict) -> str:
        """`source` itself when it is of this family, else its conversion in the work folder."""
        if self.is_own(AutoConfig.from_pretrained(source)):
            return source
        from ..convert import convert

        target = os.path.join(options["work_dir"], f"{self.name}-encoder")
        max_length = options.get("max_length") or DEFAULT_MAX_LENGTH
        settings = self.conversion_settings(max_length, options)
        logger.info(f"converting {source} into a {max_length}-token {self.title} at {target} ...")
        logger.info(convert(source, target, to=self.target, max_length=max_length, **settings))
        return target

    def _build(self, head, source, options):
        long_source = self.converted(source, options)
        tokenizer = AutoTokenizer.from_pretrained(long_source)
        config = AutoConfig.from_pretrained(long_source)
        model_class = head_model_class(self.head_classes(config), head, self.name)
        fields = {**(options.get("head_config") or {}), **(options.get("config_overrides") or {})}
        if getattr(config, "sep_token_id", None) is None and tokenizer.sep_token_id is not None:
            fields.setdefault("sep_token_id", tokenizer.sep_token_id)  # pair inputs (QA) find the question by it
        # a source with another head (or another number of labels) has it replaced
        model = load_with_new_head(model_class, long_source, **fields)
        model.config.architectures = [model_class.__name__]  # what it is now (the source's until saved)
        return model, tokenizer

    def _load(self, model_dir, head, fields, dtype):
        model_class = head_model_class(self.head_classes(AutoConfig.from_pretrained(model_dir)), head, self.name)
        return model_class.from_pretrained(model_dir, dtype=dtype)

    # -- classification ------------------------------------------------------------------------

    def defaults(self, frozen):
        if frozen:
            raise ValueError(f"--freeze-encoder works with the segment families (segment, chunk-pool, truncate); "
                             f"{self.a_title} is trained whole")
        return TrainingDefaults(epochs=4, learning_rate=5e-5, batch_size=2, head_learning_rate=1e-3)

    def max_length(self, model, tokenizer) -> int:
        """Tokens the model reads, special tokens included."""
        raise NotImplementedError

    def training_items(self, model, tokenizer, texts, targets, options):
        encoded = tokenizer(texts, truncation=True, max_length=self.max_length(model, tokenizer))["input_ids"]
        return [{"input_ids": ids, "labels": t} for ids, t in zip(encoded, targets)]

    def collate(self, model, tokenizer):
        def collate(items):
            ids, mask = pad_segments([item["input_ids"] for item in items], tokenizer.pad_token_id)
            return with_labels({"input_ids": ids, "attention_mask": mask}, items)

        return collate

    @torch.inference_mode()
    def predict(self, model, tokenizer, texts, explain=False, bf16=None, progress=None):
        items = self.training_items(model, tokenizer, texts, [0] * len(texts), {})
        lengths = [len(item["input_ids"]) for item in items]
        bf16 = bf16_autocast_default(model.device) if bf16 is None else bf16
        logits = [None] * len(items)
        model.eval()
        collate = self.collate(model, tokenizer)
        batches = length_sorted_batches(lengths, DEFAULT_BATCH_TOKENS)
        with autocast_context(model.device, bf16):
            for batch in tqdm(batches, desc=progress, disable=progress is None):
                inputs = collate([items[i] for i in batch])
                inputs.pop("labels")
                out = model(**{k: v.to(model.device) for k, v in inputs.items()})
                for row, index in enumerate(batch):
                    logits[index] = out.logits[row].float().cpu()
        return Predictions(logits=torch.stack(logits).numpy(), tokens=sum(lengths))
