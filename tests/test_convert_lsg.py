"""Conversion of short BERT / RoBERTa / BART checkpoints into LSG models (`convert(..., to="lsg")`)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers

import longdoc
from longdoc.cli import main
from longdoc.convert import convert
from longdoc.convert.lsg import spread_positions
from test_convert import bert_tokenizer, padded_batch, roberta_tokenizer, save_tiny, tiny_bert, tiny_roberta

LSG = dict(block_size=8, sparse_block_size=8, sparsity_factor=2, num_global_tokens=3)


def tiny_bart(folder):
    config = transformers.BartConfig(vocab_size=32, d_model=32, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37,
                                     decoder_ffn_dim=37, max_position_embeddings=40, init_std=0.2, pad_token_id=1,
                                     bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    return save_tiny(folder, transformers.BartForConditionalGeneration, config, roberta_tokenizer())


@pytest.mark.parametrize("make,model_class,offset", [
    (tiny_bert, longdoc.LSGBertModel, 0),
    (tiny_roberta, longdoc.LSGRobertaForMaskedLM, 2),
])
def test_encoder_conversion_verifies_and_extends_positions(tmp_path, make, model_class, offset):
    source = make(tmp_path / "src")
    report = convert(source, tmp_path / "long", to="lsg", max_length=150, **LSG)
    assert report.model_class == model_class.__name__
    assert report.verification.passed and report.verification.max_abs_diff < 1e-4
    model = model_class.from_pretrained(tmp_path / "long")
    short = transformers.AutoModel.from_pretrained(source)
    table = model.base_model.embeddings.position_embeddings.weight
    short_table = short.embeddings.position_embeddings.weight
    assert table.shape[0] == 150 + offset
    n = short_table.shape[0] - offset
    torch.testing.assert_close(table[offset + n + 5], short_table[offset + 5])  # tiled
    # global 0 = spread position row 0 + the [CLS]/<s> embedding + token type 0
    expected = spread_positions(short_table)[0] + short.embeddings.word_embeddings.weight[0 if offset else 2]
    expected += short.embeddings.token_type_embeddings.weight[0]
    torch.testing.assert_close(model.base_model.embeddings.global_embeddings.weight[0], expected)
    # on long inputs it runs LSG attention over the whole length
    ids, mask = padded_batch(140, model.config.pad_token_id, vocab_size=model.config.vocab_size)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    assert torch.isfinite(out[0]).all() and out[0].shape[:2] == (2, 140)


def test_bart_conversion_extends_both_tables_and_generates(tmp_path):
    source = tiny_bart(tmp_path / "bart")
    report = convert(source, tmp_path / "long", to="lsg", max_length=100, **LSG)
    assert report.verification.passed and report.verification.logits_max_abs_diff < 1e-4
    model = longdoc.LSGBartForConditionalGeneration.from_pretrained(tmp_path / "long").eval()
    assert model.model.encoder.embed_positions.weight.shape[0] == 102
    assert model.model.decoder.embed_positions.weight.shape[0] == 102
    ids, mask = padded_batch(90, 1, vocab_size=32)
    with torch.no_grad():
        tokens = model.generate(input_ids=ids, attention_mask=mask, max_length=8, num_beams=2)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 8


def test_cli_converts_and_rejects_settings_of_another_target(tmp_path, capsys):
    source = tiny_bert(tmp_path / "src", transformers.BertForMaskedLM)
    assert main(["convert", "--to", "lsg", str(source), str(tmp_path / "out"), "--max-length", "120",
                 "--block-size", "8", "--sparse-block-size", "8", "--sparsity-type", "pooling"]) == 0
    assert "LSGBertForMaskedLM" in capsys.readouterr().out
    config = longdoc.LSGBertConfig.from_pretrained(tmp_path / "out")
    assert (config.block_size, config.sparsity_type, config.max_position_embeddings) == (8, "pooling", 120)
    assert main(["convert", "--to", "lsg", str(source), str(tmp_path / "o2"), "--window", "8"]) != 0
    assert "--window do(es) not apply to --to lsg" in capsys.readouterr().err


@pytest.mark.parametrize("settings,message", [
    (dict(block_size=10, sparsity_factor=4), "multiple of sparsity_factor"),
    (dict(sparsity_type="random"), "choose one of norm, pooling, lsh"),
    (dict(window=8), "does not take"),
])
def test_bad_settings_are_explained(tmp_path, settings, message):
    source = tiny_bert(tmp_path / "src")
    with pytest.raises(ValueError, match=message):
        convert(source, tmp_path / "out", to="lsg", max_length=100, **settings)


def test_unconvertible_architecture_lists_the_supported_ones(tmp_path):
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=40, n_positions=32)
    transformers.GPT2Model(config).save_pretrained(tmp_path / "gpt2")
    bert_tokenizer().save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match=r"cannot convert a 'gpt2' checkpoint.*bert.*roberta.*bart"):
        convert(tmp_path / "gpt2", tmp_path / "out", to="lsg", max_length=100)


def test_longer_input_than_positions_says_how_to_convert(tmp_path):
    source = tiny_bert(tmp_path / "src")
    convert(source, tmp_path / "long", to="lsg", max_length=72, **LSG)
    model = longdoc.LSGBertModel.from_pretrained(tmp_path / "long")
    with pytest.raises(ValueError, match="longdoc convert --to lsg SRC OUT --max-length 80"):
        model(torch.randint(5, 50, (1, 80)))


def tiny_mpnet(folder, model_class=transformers.MPNetForMaskedLM):
    config = transformers.MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37, max_position_embeddings=66, initializer_range=0.2,
                                      relative_attention_num_buckets=32)
    tokenizer = transformers.MPNetTokenizer(vocab_file=str(_mpnet_vocab(folder)))
    return save_tiny(folder, model_class, config, tokenizer)


def _mpnet_vocab(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"] + [f"w{i}" for i in range(94)]
    path.write_text("\n".join(tokens) + "\n")
    return path


def test_mpnet_conversion_keeps_the_relative_position_bias_exact(tmp_path):
    source = tiny_mpnet(tmp_path / "mpnet")
    report = convert(source, tmp_path / "long", to="lsg", max_length=150, **LSG)
    assert report.model_class == "LSGMPNetForMaskedLM"
    assert report.verification.max_abs_diff < 1e-4 and report.verification.logits_max_abs_diff < 1e-4
    model = longdoc.LSGMPNetForMaskedLM.from_pretrained(tmp_path / "long").eval()
    source_model = transformers.MPNetForMaskedLM.from_pretrained(source)
    torch.testing.assert_close(model.mpnet.encoder.relative_attention_bias.weight,
                               source_model.mpnet.encoder.relative_attention_bias.weight)
    torch.testing.assert_close(model.mpnet.encoder.layer[1].attention.self.key.weight,
                               source_model.mpnet.encoder.layer[1].attention.attn.k.weight)
    ids, mask = padded_batch(140, 1, vocab_size=100)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids, attention_mask=mask).logits).all()
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "long" / "model.safetensors")
    assert "mpnet.encoder.layer.0.attention.attn.q.weight" in saved  # MPNet's published names on disk
    assert not any(".attention.self." in key for key in saved)


def test_longformer_refuses_mpnet_and_points_to_lsg(tmp_path):
    source = tiny_mpnet(tmp_path / "mpnet")
    with pytest.raises(ValueError, match="convert it with --to lsg"):
        convert(source, tmp_path / "out", to="longformer", max_length=150, window=16)


def test_packaged_minilm_converts_to_lsg_and_verifies(tmp_path):
    from longdoc.assets import packaged_minilm

    report = convert(packaged_minilm(), tmp_path / "minilm-lsg", to="lsg", max_length=2048, block_size=64,
                     sparse_block_size=64)
    assert report.model_class == "LSGBertModel" and report.verification.max_abs_diff < 1e-4
    assert report.verification.lengths[0] == 128  # two blocks: the full-attention fallback


@pytest.mark.slow
def test_packaged_mpnet_converts_to_lsg_and_verifies(tmp_path):
    from longdoc.assets import packaged_mpnet

    report = convert(packaged_mpnet(), tmp_path / "mpnet-lsg", to="lsg", max_length=4096)
    assert report.model_class == "LSGMPNetModel" and report.verification.max_abs_diff < 1e-4
