"""Ad-hoc warm start of a HAT from a short encoder (`convert(..., to="hat")`), verified segment by segment."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers

import longdoc
from longdoc.cli import main
from longdoc.convert import VerificationError, convert
from longdoc.convert.hat import verify_hat
from test_convert import tiny_bert, tiny_roberta
from test_convert_lsg import tiny_mpnet

HAT = dict(max_sentence_size=16, max_sentences=6)


@pytest.mark.parametrize("make, model_class, layout", [
    (tiny_bert, longdoc.HATModel, "S|SD"),
    (tiny_roberta, longdoc.HATForMaskedLM, "D|SD"),
    (tiny_mpnet, longdoc.HATForMaskedLM, "SD|S"),
])
def test_conversion_reproduces_the_source_on_every_segment(tmp_path, make, model_class, layout):
    source = make(tmp_path / "src")
    report = convert(source, tmp_path / "hat", to="hat", layout=layout, **HAT)
    assert report.model_class == model_class.__name__ and report.max_length == 96
    assert report.verification.passed and report.verification.max_abs_diff < 1e-4
    if model_class is longdoc.HATForMaskedLM:
        assert report.verification.logits_max_abs_diff < 1e-4
    model = model_class.from_pretrained(tmp_path / "hat")
    base = model.base_model
    short = transformers.AutoModel.from_pretrained(source)
    assert model.config.layout == layout and model.config.max_sentences == 6
    # a cross-segment encoder holds its source layer; segment positions are source rows 1..N+1
    i = layout.split("|").index("SD")
    source_query = short.encoder.layer[i].attention
    source_query = source_query.attn.q if hasattr(source_query, "attn") else source_query.self.query
    torch.testing.assert_close(base.encoder.layer[i].document_encoder.attention.self.query.weight, source_query.weight)
    torch.testing.assert_close(base.encoder.segment_position_table.weight,
                               short.embeddings.position_embeddings.weight[1:8])
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hat")
    assert tokenizer.model_max_length == 96


def test_layout_deeper_than_the_source_reuses_its_last_layer(tmp_path):
    source = tiny_roberta(tmp_path / "src")  # 2 layers
    report = convert(source, tmp_path / "hat", to="hat", layout="S|SD|D|D", **HAT)
    assert report.verification.passed
    model = longdoc.HATForMaskedLM.from_pretrained(tmp_path / "hat")
    layers = model.hi_transformer.encoder.layer
    torch.testing.assert_close(layers[3].document_encoder.output.dense.weight,
                               layers[1].document_encoder.output.dense.weight)


def test_verification_catches_a_wrong_weight(tmp_path):
    source = tiny_bert(tmp_path / "src")
    convert(source, tmp_path / "hat", to="hat", layout="S|SD", **HAT)
    model = longdoc.HATModel.from_pretrained(tmp_path / "hat")
    with torch.no_grad():
        dense = model.encoder.layer[1].sentence_encoder.output.dense
        dense.weight += 0.01 * torch.randn(dense.weight.shape, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "hat")
    with pytest.raises(VerificationError, match="segment by segment"):
        verify_hat(str(source), str(tmp_path / "hat"))


@pytest.mark.parametrize("settings, message", [
    (dict(layout="S|Q"), "layer 1 is 'Q'"),
    (dict(max_sentence_size=80), "max_sentence_size=80 does not fit the source's positions: it reads at most 64"),
    (dict(max_sentences=70), "max_sentences=70 needs 72 rows"),
    (dict(window=8), "hat conversion does not take"),
])
def test_bad_settings_are_explained(tmp_path, settings, message):
    source = tiny_bert(tmp_path / "src")
    with pytest.raises(ValueError, match=message):
        convert(source, tmp_path / "hat", to="hat", **{**HAT, **settings})
    assert not (tmp_path / "hat").exists()


def test_cli_converts_with_hat_settings(tmp_path, capsys):
    source = tiny_bert(tmp_path / "src")
    code = main(["convert", "--to", "hat", str(source), str(tmp_path / "hat"), "--layout", "SD|D",
                 "--max-sentences", "4", "--max-sentence-size", "16"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "verified: max |diff|" in printed and "layout SD|D" in printed
    assert main(["convert", "--to", "hat", str(source), str(tmp_path / "x"), "--block-size", "8"]) != 0
    assert "--block-size do(es) not apply to --to hat" in capsys.readouterr().err


def test_packaged_minilm_converts_to_hat_and_verifies(tmp_path):
    from longdoc.assets import packaged_minilm

    report = convert(packaged_minilm(), tmp_path / "minilm-hat", to="hat", layout="S|S|SD|S|S|SD", max_sentences=16)
    assert report.model_class == "HATModel" and report.max_length == 2048
    assert report.verification.max_abs_diff < 1e-4 and report.verification.lengths[0] == 3 * 128
