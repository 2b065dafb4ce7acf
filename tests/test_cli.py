"""The `longdoc` command line (longdoc.cli)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub here: everything below is local

import json
import subprocess
import sys

import pytest
import torch
import transformers

from longdoc.cli import build_parser, main


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT of 64 positions with a 20-token WordPiece vocabulary."""
    folder = tmp_path_factory.mktemp("src") / "bert"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(15)]
    config = transformers.BertConfig(
        vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}).save_pretrained(folder)
    return folder


def test_convert_command(tiny_bert, tmp_path, capsys):
    out = tmp_path / "long"
    arguments = ["convert", "--to", "longformer", str(tiny_bert), str(out), "--max-length", "256", "--window", "32"]
    status = main(arguments)
    printed = capsys.readouterr().out
    assert status == 0
    assert "LongformerModel" in printed and "256 tokens" in printed
    assert "verified: max |diff| of last hidden states" in printed
    assert json.loads((out / "config.json").read_text())["attention_window"] == 32


def test_convert_command_without_verification(tiny_bert, tmp_path, capsys):
    arguments = ["convert", str(tiny_bert), str(tmp_path / "long"), "--max-length", "128", "--window", "32"]
    assert main([*arguments, "--no-verify"]) == 0
    assert "not verified" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--max-length", "256", "--window", "31"], "positive even"),
        (["--max-length", "64", "--window", "32"], "not larger than the 64 tokens"),
    ],
)
def test_bad_input_exits_non_zero_with_the_reason(tiny_bert, tmp_path, capsys, arguments, message):
    status = main(["convert", str(tiny_bert), str(tmp_path / "long"), *arguments])
    assert status == 1
    assert message in capsys.readouterr().err


def test_missing_source_exits_non_zero(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nothing"), str(tmp_path / "long")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_parser_has_subcommands_and_needs_one(capsys):
    assert "convert" in build_parser().format_help()
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["convert", "a", "b", "--to", "bigbird"])
    assert "invalid choice: 'bigbird'" in capsys.readouterr().err


def test_module_entry_point(tiny_bert, tmp_path):
    out = tmp_path / "long"
    result = subprocess.run(
        [sys.executable, "-m", "longdoc.cli", "convert", str(tiny_bert), str(out), "--max-length", "256",
         "--window", "32"],
        capture_output=True, text=True, timeout=120, env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    assert (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists()
