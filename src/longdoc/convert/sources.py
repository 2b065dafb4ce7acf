"""Short checkpoints that `convert()` reads, described as data.

Every family here has BERT's encoder layout: `embeddings.*`, `encoder.layer.{i}.*` and
`pooler.*` with the same sub-module names a Longformer uses. So the encoder maps by moving
it from the source's prefix (`bert.`, `roberta.`, ...) to the target's; what differs between
families is only that prefix, the names of the masked-LM head, and where the position table
starts (row 0 for BERT, row pad_token_id + 1 for RoBERTa).
"""

from __future__ import annotations

from dataclasses import dataclass

# Top-level encoder parts whose names are the same in the source and in a Longformer.
ENCODER_PARTS = ("embeddings.", "encoder.", "pooler.")


@dataclass(frozen=True)
class SourceArchitecture:
    """How one family of short checkpoints names its weights and numbers its positions."""

    name: str
    model_types: tuple[str, ...]  # config.model_type values stored with this layout
    encoder_prefix: str  # where the encoder sits inside task models, e.g. "bert."
    masked_lm_classes: tuple[str, ...]  # config.architectures whose MLM head we carry over
    head_key_map: tuple[tuple[str, str], ...]  # source head name prefix -> Longformer name prefix
    positions_after_padding: bool  # True: token k has position pad_token_id + 1 + k (RoBERTa); False: k (BERT)
    dropped_keys: tuple[str, ...] = ()  # source weight prefixes with no Longformer counterpart
    embedding_size_field: str | None = None  # config field that must equal hidden_size (ELECTRA)
    seq2seq: bool = False  # an encoder-decoder (BART): positions in `embed_positions`, offset 2

    def auto_class(self, config):
        """The `transformers` auto class that loads the source with the weights we carry over."""
        from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

        if self.seq2seq:
            return AutoModelForSeq2SeqLM
        return AutoModelForMaskedLM if self.has_masked_lm_head(config) else AutoModel

    def position_offset(self, config) -> int:
        """Row of the source position table that holds the first token."""
        if self.seq2seq:
            return 2  # BART's learned positions always skip two rows
        return config.pad_token_id + 1 if self.positions_after_padding else 0

    def max_tokens(self, config) -> int:
        """Longest input the source model can take."""
        if self.seq2seq:
            return config.max_position_embeddings  # BART's table has the two extra rows beyond this
        return config.max_position_embeddings - self.position_offset(config)

    def load(self, src: str, dtype="auto"):
        """The source model with the weights we carry over. A config that names a masked-LM class but a
        checkpoint without the head's weights (sentence-transformers exports do this) loads as an encoder."""
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging

        auto_class = self.auto_class(AutoConfig.from_pretrained(src))
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # a missing head is handled below, not reported as a problem
        try:
            model, info = auto_class.from_pretrained(src, dtype=dtype, output_loading_info=True)
        finally:
            logging.set_verbosity(verbosity)
        if self.has_masked_lm_head(model.config) and info["missing_keys"]:
            model = AutoModel.from_pretrained(src, dtype=dtype)
            model.config.architectures = [type(model).__name__]
        return model

    def has_masked_lm_head(self, config) -> bool:
        return any(name in self.masked_lm_classes for name in (config.architectures or ()))

    def check(self, config) -> None:
        """Refuse variants whose weights would not mean the same thing in a Longformer."""
        kind = getattr(config, "position_embedding_type", "absolute")
        if kind not in (None, "absolute"):
            raise ValueError(
                f"this {self.name} checkpoint uses position_embedding_type={kind!r}; only 'absolute' "
                f"position tables can be extended to a Longformer"
            )
        if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
            raise ValueError(f"this {self.name} checkpoint is a decoder; convert an encoder checkpoint instead")
        if self.embedding_size_field is not None:
            size = getattr(config, self.embedding_size_field, config.hidden_size)
            if size != config.hidden_size:
                raise ValueError(
                    f"this {self.name} checkpoint has {self.embedding_size_field}={size} != hidden_size="
                    f"{config.hidden_size} (it projects its embeddings); only checkpoints whose embeddings "
                    f"have the hidden size can be converted"
                )
        if config.pad_token_id is None:
            raise ValueError(f"this {self.name} checkpoint's config has no pad_token_id; set it in config.json")

    def longformer_key(self, key: str, target_encoder_prefix: str) -> str | None:
        """Longformer name of source weight `key`, or None when the weight is dropped.

        target_encoder_prefix is "longformer." inside LongformerForMaskedLM, "" for LongformerModel.
        """
        body = key.removeprefix(self.encoder_prefix)
        if body.startswith(ENCODER_PARTS):
            return target_encoder_prefix + body
        for source_prefix, target_prefix in self.head_key_map:
            if key.startswith(source_prefix):
                return target_prefix + key[len(source_prefix):]
        if self.dropped_keys and key.startswith(self.dropped_keys):
            return None
        raise ValueError(f"source weight {key!r} has no Longformer counterpart in the {self.name} key map")


BERT = SourceArchitecture(
    name="bert",
    model_types=("bert",),
    encoder_prefix="bert.",
    masked_lm_classes=("BertForMaskedLM", "BertForPreTraining"),
    head_key_map=(
        ("cls.predictions.transform.dense.", "lm_head.dense."),
        ("cls.predictions.transform.LayerNorm.", "lm_head.layer_norm."),
        ("cls.predictions.decoder.", "lm_head.decoder."),
        ("cls.predictions.bias", "lm_head.bias"),
    ),
    positions_after_padding=False,
    dropped_keys=("cls.seq_relationship.",),  # next-sentence head of BertForPreTraining
)

ROBERTA = SourceArchitecture(
    name="roberta",
    model_types=("roberta", "xlm-roberta", "camembert"),
    encoder_prefix="roberta.",
    masked_lm_classes=("RobertaForMaskedLM", "XLMRobertaForMaskedLM", "CamembertForMaskedLM"),
    head_key_map=(("lm_head.", "lm_head."),),  # Longformer's MLM head is RoBERTa's, name for name
    positions_after_padding=True,
)

ELECTRA = SourceArchitecture(
    name="electra",
    model_types=("electra",),
    encoder_prefix="electra.",
    masked_lm_classes=(),  # the generator's head has another shape; discriminators convert as encoders
    head_key_map=(),
    positions_after_padding=False,
    dropped_keys=("discriminator_predictions.",),
    embedding_size_field="embedding_size",
)

MPNET = SourceArchitecture(
    name="mpnet",
    model_types=("mpnet",),
    encoder_prefix="mpnet.",
    masked_lm_classes=("MPNetForMaskedLM",),
    head_key_map=(("lm_head.", "lm_head."),),
    positions_after_padding=True,
)

BART = SourceArchitecture(
    name="bart",
    model_types=("bart",),
    encoder_prefix="model.",
    masked_lm_classes=(),
    head_key_map=(),
    positions_after_padding=True,
    seq2seq=True,
)

SOURCE_ARCHITECTURES: tuple[SourceArchitecture, ...] = (BERT, ROBERTA, ELECTRA, MPNET, BART)


def supported_model_types() -> list[str]:
    return [t for arch in SOURCE_ARCHITECTURES for t in arch.model_types]


def source_architecture(config) -> SourceArchitecture:
    """The SourceArchitecture that reads a checkpoint with this config (validated)."""
    for arch in SOURCE_ARCHITECTURES:
        if config.model_type in arch.model_types:
            arch.check(config)
            return arch
    raise ValueError(
        f"cannot convert a {config.model_type!r} checkpoint: supported source architectures are "
        f"{', '.join(supported_model_types())}"
    )
