"""Published weight names -> our shared modules, as data.

A family whose checkpoints name a shared module differently (BERT's `cls.predictions.transform.dense`
for the LM head's `lm_head.dense`, BART's `self_attn.q_proj` for the layer's `attention.self.query`)
declares the renames here; they are registered with `transformers` so `from_pretrained` reads the
published names and `save_pretrained` writes them back, and `rename_keys` applies them by hand.
"""

from __future__ import annotations

import re

from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming

Renames = tuple[tuple[str, str], ...]  # (published regex, our name); applied in order

BERT_LM_HEAD: Renames = (
    (r"cls\.predictions\.transform\.dense\.", "lm_head.dense."),
    (r"cls\.predictions\.transform\.LayerNorm\.", "lm_head.layer_norm."),
    (r"cls\.predictions\.decoder\.", "lm_head.decoder."),
    (r"cls\.predictions\.bias", "lm_head.bias"),
)

BART_ENCODER_LAYER: Renames = (
    (r"\.self_attn\.q_proj\.", ".attention.self.query."),
    (r"\.self_attn\.k_proj\.", ".attention.self.key."),
    (r"\.self_attn\.v_proj\.", ".attention.self.value."),
    (r"\.self_attn\.out_proj\.", ".attention.output.dense."),
    (r"\.self_attn_layer_norm\.", ".attention.output.LayerNorm."),
    (r"\.fc1\.", ".intermediate.dense."),
    (r"\.fc2\.", ".output.dense."),
    (r"\.final_layer_norm\.", ".output.LayerNorm."),
)


def scoped(renames: Renames, scope: str) -> Renames:
    """Restrict renames to keys under `scope` (e.g. the encoder's layers, not the decoder's)."""
    return tuple((rf"{re.escape(scope)}(\.\d+){published}", rf"{scope}\1{ours}") for published, ours in renames)


def register_weight_names(class_names: list[str], renames: Renames) -> None:
    """Teach `from_pretrained`/`save_pretrained` the published names of these classes' weights."""
    for name in class_names:
        register_checkpoint_conversion_mapping(
            name, [WeightRenaming(source_patterns=src, target_patterns=dst) for src, dst in renames], overwrite=True
        )


def rename_keys(state_dict: dict, renames: Renames) -> dict:
    """Published names -> ours, by hand (conversion from a short checkpoint's state dict)."""
    out = {}
    for key, value in state_dict.items():
        for published, ours in renames:
            key = re.sub(published, ours, key)
        out[key] = value
    return out
