"""Library code prints nothing: a Python caller chooses what it sees through `logging`; the command
line shows the progress lines (one per epoch, no Trainer log dictionaries) on stderr."""

import logging

import pytest

from longdoc import train_classifier
from longdoc.cli import main
from longdoc.logs import show_progress

from tiny_checkpoints import tiny_bert, write_documents


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logging")
    return (tiny_bert(folder / "bert"), write_documents(folder / "train.jsonl", 16, 0),
            write_documents(folder / "dev.jsonl", 8, 1))


@pytest.fixture
def unconfigured(monkeypatch):
    """longdoc's logger as a Python caller finds it: no handler of ours, level not set (whatever
    an earlier test in the same process configured)."""
    package = logging.getLogger("longdoc")
    monkeypatch.setattr(package, "handlers", [])
    monkeypatch.setattr(package, "level", logging.NOTSET)


ARGUMENTS = dict(family="chunk-pool", freeze_encoder=True, chunk_size=14, epochs=2)


def test_training_prints_nothing_unless_logging_is_configured(setup, tmp_path, capsys, caplog, unconfigured):
    encoder, train, dev = setup
    caplog.set_level(logging.INFO, logger="longdoc")  # recorded, not shown
    train_classifier(train, dev, tmp_path / "m", model=str(encoder), cache_dir=tmp_path, **ARGUMENTS)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "{'loss'" not in captured.err and "'eval_loss'" not in captured.err
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epochs) == 2 and "dev macro-F1" in epochs[0]

    show_progress()  # what the command line does: INFO lines on stderr, plain
    show_progress()  # idempotent: one handler
    train_classifier(train, dev, tmp_path / "m2", model=str(encoder), cache_dir=tmp_path, **ARGUMENTS)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert sum(line.startswith("epoch 1: dev macro-F1") for line in lines) == 1


def test_cli_shows_one_line_per_epoch(setup, tmp_path, capsys, unconfigured):
    encoder, train, dev = setup
    code = main(["train", "--family", "chunk-pool", "--model", str(encoder), "--train", str(train), "--validation",
                 str(dev), "--output", str(tmp_path / "m"), "--freeze-encoder", "--epochs", "3", "--chunk-size", "14",
                 "--cache-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0 and f"to {tmp_path / 'm'}" in captured.out
    epochs = [line for line in captured.err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2", "epoch 3"]
    assert "{'loss'" not in captured.err + captured.out
