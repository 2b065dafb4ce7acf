"""The LSG family (local, sparse and global attention; lsg-converter's models): a short BERT, RoBERTa or
MPNet encoder converted into an LSG model that reads a document whole (4096 tokens unless
--max-length), or an LSG-BART encoder-decoder for summarization.

The LSG settings (block_size, sparse_block_size, sparsity_factor, sparsity_type,
num_global_tokens) of a conversion come from the options, else LSG's defaults.
"""

from __future__ import annotations

import os

from transformers import AutoConfig

from .base import encoder_max_tokens
from .sequence import SequenceFamily

LSG_SETTINGS = ("block_size", "sparse_block_size", "sparsity_factor", "sparsity_type", "num_global_tokens")


def load_seq2seq(model_dir: str | os.PathLike, dtype=None):
    """The LSG-BART (or any `transformers` seq2seq) model saved in `model_dir`."""
    from .. import models

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


class LSGFamily(SequenceFamily):
    target = "lsg"
    title = "LSG model"
    a_title = "an LSG model"

    def is_own(self, config):
        return hasattr(config, "block_size") or any(a.startswith("LSG") for a in config.architectures or ())

    def head_classes(self, config):
        from .. import models

        if config.model_type == "bart":
            return {"classification": models.LSGBartForSequenceClassification,
                    "spans": models.LSGBartForQuestionAnswering, "seq2seq": models.LSGBartForConditionalGeneration}
        prefix = {"bert": "LSGBert", "electra": "LSGBert", "roberta": "LSGRoberta", "mpnet": "LSGMPNet"}.get(
            config.model_type)
        if prefix is None:
            raise ValueError(f"--family lsg reads BERT, RoBERTa, MPNet and BART checkpoints, not {config.model_type!r}")
        suffixes = {"classification": "ForSequenceClassification", "spans": "ForQuestionAnswering",
                    "tokens": "ForTokenClassification", "choices": "ForMultipleChoice", "masked-lm": "ForMaskedLM"}
        return {head: getattr(models, prefix + suffix) for head, suffix in suffixes.items()}

    def conversion_settings(self, max_length, options):
        return {name: options[name] for name in LSG_SETTINGS if options.get(name) is not None}

    def _build(self, head, source, options):
        if head == "seq2seq":  # an encoder-decoder trains as it is (LSG-BART, or any transformers seq2seq model)
            from transformers import AutoTokenizer

            return load_seq2seq(source), AutoTokenizer.from_pretrained(source)
        return super()._build(head, source, options)

    def load(self, model_dir, heads=("classification",), dtype=None):
        if heads == ("seq2seq",):  # any transformers seq2seq model, with load_seq2seq's advice for an encoder
            return load_seq2seq(model_dir, dtype)
        return super().load(model_dir, heads, dtype)

    def max_length(self, model, tokenizer):
        return encoder_max_tokens(model.config, tokenizer)
