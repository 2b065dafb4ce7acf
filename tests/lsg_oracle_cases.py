"""The parity cases run against lsg-converter (tests/oracles/lsg_oracle.py builds them there)."""

from __future__ import annotations

ENCODER = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=160, initializer_range=0.1)
BART = dict(vocab_size=60, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=160,
            init_std=0.1, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
            forced_eos_token_id=2)
GENERATE = [
    dict(max_length=10, num_beams=1, do_sample=False, min_length=0, no_repeat_ngram_size=0),
    dict(max_length=10, num_beams=3, do_sample=False, min_length=0, no_repeat_ngram_size=0, length_penalty=1.0,
         early_stopping=True),
]

# (block_size, sparse_block_size, sparsity_factor, num_global_tokens, extra settings, lengths, padded length)
GEOMETRIES = [
    (8, 8, 2, 1, {}, [45, 30], 45),
    (8, 4, 4, 3, {"pool_with_global": False}, [64, 50], 64),
    (16, 8, 2, 2, {"mask_first_token": True}, [70, 41], 70),
    (8, 16, 2, 1, {}, [57, 57], 57),
]
SPARSITY = ["norm", "pooling", "stride", "block_stride", "bos_pooling", "none"]
# (family, block_size, sparse_block_size, sparsity_factor, num_global_tokens, extra, lengths, padded length):
# geometries where bos_pooling once differed from lsg-converter; the short rows end in whole sparse windows
# (sparsity_factor tokens) of padding only, user and adaptive padding.
PADDED_GEOMETRIES = [
    ("bert", 16, 16, 2, 2, {"token_types": True}, [150, 83], 150),
    ("roberta", 32, 16, 4, 1, {}, [150, 97], 150),
    ("bart", 16, 8, 2, 2, {"mask_first_token": True}, [70, 41], 70),
]
FAMILY_CONFIG = {"bert": ENCODER, "roberta": {**ENCODER, "pad_token_id": 1, "max_position_embeddings": 162},
                 "bart": BART}


def _lsg(bs, sbs, f, g, kind, extra):
    return dict(block_size=bs, sparse_block_size=sbs, sparsity_factor=f, num_global_tokens=g, sparsity_type=kind,
                **extra)


def cases() -> list[dict]:
    out = []
    for kind in SPARSITY:
        for index, (bs, sbs, f, g, extra, lengths, total) in enumerate(GEOMETRIES):
            out.append(dict(name=f"bert-{kind}-{index}", family="bert", head="Model", lengths=lengths, total=total,
                            config={**ENCODER, **_lsg(bs, sbs, f, g, kind, extra)}))
    for kind in SPARSITY:
        for index, (family, bs, sbs, f, g, extra, lengths, total) in enumerate(PADDED_GEOMETRIES):
            settings = {key: value for key, value in extra.items() if key != "token_types"}
            out.append(dict(name=f"{family}-{kind}-padded-{index}", family=family, head="Model", lengths=lengths,
                            total=total, token_types=extra.get("token_types", False),
                            config={**FAMILY_CONFIG[family], **_lsg(bs, sbs, f, g, kind, settings)}))
    for kind in [kind for kind in SPARSITY if kind != "none"]:  # block_size == sparsity_factor: one key per block
        out.append(dict(name=f"bert-{kind}-step-1", family="bert", head="Model", lengths=[40, 25], total=40,
                        config={**ENCODER, **_lsg(4, 6, 4, 1, kind, {})}))
    for lengths in ([16, 10], [12, 7]):  # at most two blocks: full attention
        out.append(dict(name=f"bert-short-{lengths[0]}", family="bert", head="Model", lengths=lengths,
                        total=lengths[0], config={**ENCODER, **_lsg(8, 8, 2, 2, "norm", {})}))
    heads = ["ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForMultipleChoice",
             "ForQuestionAnswering"]
    for family in ("bert", "roberta"):
        for head in heads + (["Model"] if family == "roberta" else []):
            extra = {"num_labels": 3} if head in ("ForSequenceClassification", "ForTokenClassification") else {}
            out.append(dict(name=f"{family}-{head}", family=family, head=head, lengths=[45, 30], total=45,
                            choices=2 if head == "ForMultipleChoice" else None,
                            config={**FAMILY_CONFIG[family], **_lsg(8, 8, 2, 2, "norm", {}), **extra}))
    bart = {**BART, **_lsg(8, 8, 2, 2, "norm", {})}
    out.append(dict(name="bart-generation", family="bart", head="ForConditionalGeneration", lengths=[45, 30],
                    total=45, config=bart, generate=GENERATE))
    out.append(dict(name="bart-generation-pooled", family="bart", head="ForConditionalGeneration", lengths=[45, 30],
                    total=45, generate=GENERATE[:1],
                    config={**bart, "pass_global_tokens_to_decoder": False, "sparsity_type": "stride"}))
    out.append(dict(name="bart-short", family="bart", head="ForConditionalGeneration", lengths=[14, 9], total=14,
                    config=bart, generate=GENERATE[:1]))
    out.append(dict(name="bart-Model", family="bart", head="Model", lengths=[45, 30], total=45, config=bart))
    out.append(dict(name="bart-ForSequenceClassification", family="bart", head="ForSequenceClassification",
                    lengths=[45, 30], total=45, config={**bart, "num_labels": 3}))
    out.append(dict(name="bart-ForQuestionAnswering", family="bart", head="ForQuestionAnswering", lengths=[45, 30],
                    total=45, config=bart))
    return out
