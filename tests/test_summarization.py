"""Summarization end to end on tiny local models: warm-starting an LSG encoder-decoder from an encoder,
training it (Seq2SeqTrainer, ROUGE on dev, best epoch kept), the Summarizer and the CLI."""

import json
import random

import pytest
import torch
import transformers

import longdoc
from longdoc.cli import main
from longdoc.convert.seq2seq import warm_start_summarizer
from longdoc.pipelines import Summarizer
from longdoc.training.train import train_summarizer
from tiny_checkpoints import WORDS, tiny_bert

LSG = dict(block_size=8, sparse_block_size=8, sparsity_factor=2, num_global_tokens=2)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    source = tiny_bert(tmp_path_factory.mktemp("src") / "bert", max_positions=64)
    out = tmp_path_factory.mktemp("s2s") / "model"
    report = warm_start_summarizer(source, out, max_length=96, decoder_layers=1, **LSG)
    return source, out, report


def write_pairs(path, count, seed):
    """Documents of random words; the summary is the document's first three words."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            words = [rng.choice(WORDS[10:30]) for _ in range(rng.randrange(20, 60))]
            handle.write(json.dumps({"id": f"d{index}", "text": " ".join(words), "summary": " ".join(words[:3])}) + "\n")
    return path


def test_warm_start_copies_the_encoder_exactly_and_seeds_the_decoder(warm):
    source, out, report = warm
    assert report.encoder_max_abs_diff < 1e-4 and report.decoder_layers == 1
    model = longdoc.LSGBartForConditionalGeneration.from_pretrained(out)
    bert = transformers.BertModel.from_pretrained(source)
    layer = bert.encoder.layer[0]
    decoder = model.model.decoder.layers[0]
    torch.testing.assert_close(decoder.fc1.weight, layer.intermediate.dense.weight)
    torch.testing.assert_close(decoder.encoder_attn.q_proj.weight, layer.attention.self.query.weight)
    torch.testing.assert_close(model.lm_head.weight, bert.embeddings.word_embeddings.weight)  # tied
    assert model.config.max_position_embeddings == 96 and model.config.decoder_start_token_id == 2  # [CLS]


def test_training_keeps_the_best_epoch_and_reports_every_epoch(warm, tmp_path):
    _, model_dir, _ = warm
    train = write_pairs(tmp_path / "train.jsonl", 24, seed=0)
    dev = write_pairs(tmp_path / "dev.jsonl", 6, seed=1)
    result = train_summarizer(train, dev, tmp_path / "out", model=model_dir, epochs=3, learning_rate=3e-3,
                              batch_size=8, max_target_length=8, num_beams=2, seed=0)
    report = json.loads((tmp_path / "out" / "training_report.json").read_text())
    assert [round(h["epoch"]) for h in report["history"]] == [1, 2, 3]
    losses = [h["train_loss"] for h in report["history"]]
    assert losses[-1] < losses[0]  # it learns
    best = max(report["history"], key=lambda h: h["rougeL"])
    assert result.best_epoch == best["epoch"] and result.dev_metrics["rougeL"] == best["rougeL"]
    summarizer = Summarizer.from_pretrained(tmp_path / "out")
    metrics = summarizer.evaluate(dev, num_beams=2, max_length=8, progress=False)
    assert metrics["documents"] == 6 and set(metrics["rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert 0 <= metrics["rouge"]["rougeL"] <= 1 and "lead_baseline" in metrics


def test_cli_summarize_streams_one_line_per_document(warm, tmp_path, capsys):
    _, model_dir, _ = warm
    pairs = write_pairs(tmp_path / "docs.jsonl", 3, seed=2)
    single = tmp_path / "page.txt"
    single.write_text(" ".join(WORDS[10:40]))
    assert main(["summarize", str(model_dir), str(pairs), str(single), "--num-beams", "2", "--max-length", "6"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["source"] for line in lines] == ["d0", "d1", "d2", str(single)]
    assert all(isinstance(line["summary"], str) for line in lines)


def test_cli_evaluate_scores_a_summarizer(warm, tmp_path, capsys):
    _, model_dir, _ = warm
    data = write_pairs(tmp_path / "test.jsonl", 3, seed=3)
    assert main(["evaluate", str(model_dir), str(data), "--num-beams", "1", "--max-length", "6"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["documents"] == 3 and "rouge2" in metrics["rouge"]


def test_bad_generation_options_and_models_are_explained(warm, tmp_path, capsys):
    source, model_dir, _ = warm
    page = tmp_path / "page.txt"
    page.write_text("w10 w11 w12")
    assert main(["summarize", str(model_dir), str(page), "--min-length", "9", "--max-length", "4"]) == 1
    assert "min_length (9) is larger than max_length (4)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not an encoder-decoder"):
        Summarizer.from_pretrained(source)
    with pytest.raises(ValueError, match="decoder_layers must be between 1 and the encoder's 2 layers"):
        warm_start_summarizer(source, tmp_path / "x", max_length=96, decoder_layers=5, **LSG)


def test_cli_warm_starts_a_summarizer(tmp_path, capsys):
    source = tiny_bert(tmp_path / "bert", max_positions=64)
    assert main(["convert", "--to", "lsg", str(source), str(tmp_path / "s2s"), "--seq2seq", "--max-length", "96",
                 "--block-size", "8", "--sparse-block-size", "8", "--decoder-layers", "1"]) == 0
    assert "1 decoder layers" in capsys.readouterr().out.replace("6 encoder + ", "")
    assert longdoc.LSGBartConfig.from_pretrained(tmp_path / "s2s").decoder_layers == 1
    assert main(["convert", "--to", "lsg", str(source), str(tmp_path / "x"), "--decoder-layers", "1"]) == 1
    assert "--decoder-layers applies only with --seq2seq" in capsys.readouterr().err
