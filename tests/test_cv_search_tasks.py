"""`longdoc cv` and `longdoc search` end to end on paths the other tests leave out: cross-validation of a
multi-label frozen classifier (iterative stratification), cross-validation of question answering (folds
by context), and a fine-tuning search (the encoder trained, no --freeze-encoder), each on a tiny model."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import random
import statistics

import pytest

from longdoc.cli import main

from qa_toy_data import write_toy_qa
from tiny_checkpoints import SIGNAL, WORDS, tiny_bert, write_documents


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")  # the same decisions on any CPU


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def multi_label_documents(path, count: int, seed: int):
    """Documents with one or two labels (alpha, beta, gamma), each label's keyword placed in the text."""
    rng = random.Random(seed)
    sets = [("alpha",), ("beta",), ("gamma",), ("alpha", "beta"), ("beta", "gamma"), ("alpha", "gamma")]
    with path.open("w") as handle:
        for index in range(count):
            labels = sets[index % len(sets)]
            tokens = [rng.choice(WORDS[10:14]) for _ in range(60)]
            for label in labels:
                start = rng.randrange(0, 54)
                tokens[start:start + 4] = [SIGNAL[label]] * 4
            handle.write(json.dumps({"id": f"doc{index}", "text": " ".join(tokens), "label": list(labels)}) + "\n")
    return path


def check_means(summary, names, folds):
    assert len(summary["per_fold"]) == folds
    for name in names:
        stats = summary["metrics"][name]
        values = [fold["test"][name] for fold in summary["per_fold"]]
        assert stats["values"] == values
        assert stats["mean"] == pytest.approx(statistics.fmean(values))


def test_cv_of_a_frozen_multi_label_classifier(tmp_path, capsys):
    encoder = tiny_bert(tmp_path / "bert")
    data = multi_label_documents(tmp_path / "all.jsonl", 30, 0)
    output = tmp_path / "cv"
    code, out, err = run(capsys, "cv", "--data", data, "--folds", 3, "--model", encoder, "--family", "segment",
                         "--multi-label", "--freeze-encoder", "--chunk-size", 14, "--epochs", 2,
                         "--learning-rate", "3e-3", "--batch-size", 8, "--cache-dir", tmp_path / "cache",
                         "--output", output)
    assert code == 0, err
    summary = json.loads(out.strip())  # one JSON object on stdout
    assert summary["method"] == "iterative-stratification"
    assert [fold["fold"] for fold in summary["per_fold"]] == [1, 2, 3]
    assert "macro_f1" in summary["metrics"]
    check_means(summary, list(summary["metrics"]), 3)
    saved = json.loads((output / "folds.json").read_text())
    assert saved["plan"]["method"] == "iterative-stratification"
    held_out = [row for fold in saved["folds"] for row in fold["test"]]
    assert sorted(held_out) == sorted(f"doc{i}" for i in range(30))
    for fold in saved["folds"]:
        assert not set(fold["test"]) & set(fold["train"] + fold["dev"])
    # the fold files keep the label lists
    rows = [json.loads(line) for line in (output / "fold-1" / "test.jsonl").read_text().splitlines()]
    assert all(isinstance(row["label"], list) and row["label"] for row in rows)
    assert summary["vector_cache"]["encoded_documents_per_fold"] == [30, 0, 0]


def test_cv_of_question_answering_keeps_each_context_in_one_fold(tmp_path, capsys):
    bert = tiny_bert(tmp_path / "bert", max_positions=64)
    path = write_toy_qa(tmp_path / "qa.jsonl", 8, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows += [{**row, "id": f"{row['id']}-again", "question": "w1 w2"} for row in rows]  # 2 questions per context
    data = tmp_path / "all.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "cv"
    code, out, err = run(capsys, "cv", "--task", "question-answering", "--family", "longformer", "--model", bert,
                         "--data", data, "--folds", 2, "--epochs", 1, "--batch-size", 4, "--learning-rate", "1e-3",
                         "--max-length", 128, "--output", output)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["group_column"] == "context" and summary["method"] == "grouped"
    check_means(summary, ("f1", "exact_match"), 2)
    context_of = {row["id"]: row["context"] for row in rows}
    saved = json.loads((output / "folds.json").read_text())
    tested = [question for fold in saved["folds"] for question in fold["test"]]
    assert sorted(tested) == sorted(context_of)
    for fold in saved["folds"]:
        seen = {context_of[q] for q in fold["train"] + fold["dev"]}
        assert not seen & {context_of[q] for q in fold["test"]}
    for number in (1, 2):  # the fold files agree with folds.json
        contexts = {split: {json.loads(line)["context"] for line in
                            (output / f"fold-{number}" / f"{split}.jsonl").read_text().splitlines()}
                    for split in ("train", "dev", "test")}
        assert not contexts["test"] & (contexts["train"] | contexts["dev"])


def test_a_fine_tuning_search_of_two_trials(tmp_path, capsys):
    """No --freeze-encoder and no head warm-up: each trial fine-tunes the whole model for the one epoch
    --epochs fixes, and the kept model's encoder differs from the checkpoint it started from."""
    pytest.importorskip("optuna")
    from safetensors.torch import load_file

    encoder = tiny_bert(tmp_path / "bert")
    train = write_documents(tmp_path / "train.jsonl", 16, 0)
    dev = write_documents(tmp_path / "dev.jsonl", 8, 1)
    output = tmp_path / "search"
    code, out, err = run(capsys, "search", "--model", encoder, "--family", "truncate", "--no-head-warmup",
                         "--train", train, "--validation", dev, "--output", output, "--epochs", 1, "--trials", 2,
                         "--chunk-size", 30, "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials_done"] == 2 and summary["frozen"] is False and summary["family"] == "truncate"
    assert summary["states"] == {"COMPLETE": 2}
    report = json.loads((output / "search.json").read_text())
    trials = report["trials"]
    assert [t["number"] for t in trials] == [0, 1] and trials[0]["defaults"] and not trials[1]["defaults"]
    assert all(t["state"] == "COMPLETE" for t in trials), trials
    assert all(t["evaluations"] == 1 and t["best_epoch"] == 1 and "epochs" not in t["params"] for t in trials)
    assert trials[0]["params"] != trials[1]["params"]
    model = output / "model"
    assert (model / "config.json").is_file()
    kept = json.loads((model / "search_trial.json").read_text())
    assert kept["value"] == summary["best_value"] == max(t["value"] for t in trials)
    assert {"trials.md", "search.json", "history.png"} <= {p.name for p in output.iterdir()}
    # fine-tuned: the encoder's weights moved
    start_weights = load_file(encoder / "model.safetensors")
    tuned = load_file(model / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    (tuned_name,) = [key for key in tuned if key.endswith(name)]
    assert not (tuned[tuned_name] == start_weights[name]).all()
