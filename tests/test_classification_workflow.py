"""Long-document classification end to end: reading documents, metrics, train / evaluate / predict
from the command line and from Python, every family, and the errors users meet."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import csv
import json
import re

import numpy as np
import pytest
from sklearn.metrics import f1_score

import longdoc
from longdoc import DocumentClassifier, SegmentClassifier, train_classifier
from longdoc.cli import main
from longdoc.data.documents import DataError, read_documents
from longdoc.data.labels import LabelSpace
from longdoc.metrics.classification import classification_metrics
from longdoc.training.save_best import SaveBest

from tiny_checkpoints import SIGNAL, tiny_bert, write_documents


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("encoder") / "bert")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return {split: write_documents(folder / f"{split}.jsonl", n, seed) for split, n, seed in
            (("train", 48, 0), ("dev", 16, 1), ("test", 16, 2))}


@pytest.fixture(scope="module")
def frozen_model(encoder, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "segment"
    result = train_classifier(data["train"], data["dev"], out, family="segment", model=str(encoder),
                              freeze_encoder=True, chunk_size=14, epochs=40, learning_rate=3e-3, batch_size=8,
                              cache_dir=tmp_path_factory.mktemp("cache"))
    return out, result


# -- reading documents ------------------------------------------------------------------------


def test_jsonl_and_csv_with_other_column_names(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"body": "one two", "y": "x"}\n\n{"body": "three", "y": ["x", "z"]}\n')
    docs = read_documents(tmp_path / "a.jsonl", text_column="body", label_column="y")
    assert [d.labels for d in docs] == [("x",), ("x", "z")]
    assert docs[1].source.endswith("a.jsonl:3")
    with (tmp_path / "b.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerow(["a long, quoted\nmulti-line text", "legal"])
        writer.writerow(["another", '["a", "b"]'])
    docs = read_documents(tmp_path / "b.csv")
    assert docs[0].text == "a long, quoted\nmulti-line text" and docs[1].labels == ("a", "b")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "holds no documents"),
        ('{"text": "fine", "label": "a"}\n{"text": "  ", "label": "a"}\n', r"bad.jsonl:2: empty document"),
        ('{"text": "fine", "label": "a"}\n{"text": "oops", "label": \n', r"bad.jsonl:2: malformed JSON"),
        ('{"body": "fine", "label": "a"}\n', r"bad.jsonl:1: no 'text' column.*--text-column"),
        ('{"text": "fine", "tag": "a"}\n', r"bad.jsonl:1: no 'label' column.*--label-column"),
        ('["text", "label"]\n', r"bad.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, content, message):
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(DataError, match=message):
        read_documents(tmp_path / "bad.jsonl")


def test_label_space_errors():
    docs = [longdoc.data.documents.Document("t", ("a", "b"), "f:1")]
    with pytest.raises(DataError, match="f:1: 2 labels.*--multi-label"):
        LabelSpace.from_documents(docs, multi_label=False)
    space = LabelSpace(("a", "b"), False)
    with pytest.raises(DataError, match=r"f:7: label\(s\) \['c'\] unknown to the model"):
        space.encode(longdoc.data.documents.Document("t", ("c",), "f:7"))


# -- metrics ----------------------------------------------------------------------------------


def test_single_label_metrics_against_hand_counts():
    space = LabelSpace(("a", "b", "c"), False)
    gold = [0, 0, 1, 2, 2]
    probs = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .8, .1], [.1, .1, .8], [.6, .2, .2]])
    m = classification_metrics(gold, probs, space)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_label"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["macro_f1"] == pytest.approx(f1_score(gold, probs.argmax(1), average="macro"))
    assert 0.5 < m["roc_auc"] <= 1.0


def test_multi_label_metrics_use_the_threshold():
    space = LabelSpace(("a", "b"), True)
    gold = [[1, 0], [1, 1], [0, 1]]
    probs = np.array([[.9, .4], [.7, .6], [.2, .3]])
    m = classification_metrics(gold, probs, space, threshold=0.5)
    assert m["accuracy"] == pytest.approx(2 / 3)  # exact match: row 3 misses b
    assert m["confusion_matrix"]["b"] == [[1, 0], [1, 1]]
    assert classification_metrics(gold, probs, space, threshold=0.25)["accuracy"] == pytest.approx(2 / 3)


# -- training and using a classifier ----------------------------------------------------------


def test_frozen_segment_classifier_learns_a_signal_beyond_the_first_segment(frozen_model, data):
    out, result = frozen_model
    assert result.dev_metrics["macro_f1"] >= 0.9, result.history
    assert (out / "config.json").is_file() and (out / "training_report.json").is_file()
    metrics = DocumentClassifier.from_pretrained(out).evaluate(data["test"])
    assert metrics["accuracy"] >= 0.9 and metrics["documents"] == 16


def test_truncate_cannot_see_a_signal_beyond_the_first_segment(encoder, data, tmp_path):
    result = train_classifier(data["train"], data["dev"], tmp_path / "t", family="truncate", model=str(encoder),
                              freeze_encoder=True, chunk_size=14, epochs=10, learning_rate=3e-3, cache_dir=tmp_path)
    assert result.dev_metrics["accuracy"] <= 0.75


def test_explanations_point_at_the_segment_with_the_keyword(frozen_model, data):
    out, _ = frozen_model
    model = SegmentClassifier.from_pretrained(out)
    docs = read_documents(data["test"])
    predictions = DocumentClassifier.from_model(model).predict([d.text for d in docs], explain=True, top_segments=1)
    hits = 0
    for doc, prediction in zip(docs, predictions):
        (label,) = prediction.labels
        (top,) = prediction.explanation[label].segments
        hits += SIGNAL[doc.labels[0]] in top.text
        assert doc.text[top.start : top.end] == top.text
    assert hits >= 0.8 * len(docs)


def test_cli_train_evaluate_predict(encoder, data, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["train", "--task", "classification", "--family", "chunk-pool", "--model", str(encoder),
                 "--train", str(data["train"]), "--validation", str(data["dev"]), "--output", str(out),
                 "--freeze-encoder", "--epochs", "3", "--chunk-size", "14", "--chunk-pooling", "max",
                 "--cache-dir", str(tmp_path / "cache")])
    printed = capsys.readouterr().out
    assert code == 0 and f"to {out}" in printed and "dev: macro-F1" in printed
    assert main(["evaluate", str(out), str(data["test"])]) == 0
    metrics = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert {"accuracy", "macro_f1", "micro_f1", "per_label", "roc_auc", "confusion_matrix"} <= set(metrics)
    (tmp_path / "doc.txt").write_text(json.loads(data["test"].read_text().splitlines()[0])["text"])
    assert main(["predict", str(out), str(tmp_path / "doc.txt"), str(data["test"]), "--explain"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 17 and records[0]["document"].endswith("doc.txt") and records[1]["document"] == "doc0"
    assert all(len(r["labels"]) == 1 and r["labels"][0] in r["explanation"] for r in records)
    assert "weight" in captured.err


def test_fine_tuned_segment_and_longformer_train_and_predict(encoder, data, tmp_path, caplog):
    caplog.set_level("INFO", logger="longdoc")
    for family, extra in (("segment", dict(chunk_size=14, max_segments=12, head_warmup=False)),
                          ("longformer", dict(max_length=128))):
        out = tmp_path / family
        result = train_classifier(data["train"], data["dev"], out, family=family, model=str(encoder), epochs=1,
                                  batch_size=8, **extra)
        assert result.best_epoch == 1 and [h["stage"] for h in result.history] == ["training"]
        # a CPU user hears up front what fine-tuning costs, and of the fast alternative
        heads_up = re.search(r"every epoch reads ([\d,]+) tokens .*--freeze-encoder", caplog.text)
        assert heads_up and int(heads_up.group(1).replace(",", "")) > 48 * 14
        classifier = DocumentClassifier.from_pretrained(out)
        assert classifier.family.name == family
        (prediction,) = classifier.predict(read_documents(data["test"])[0].text)
        assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_fine_tuning_starts_from_the_best_warmed_up_head(encoder, data, tmp_path, caplog):
    caplog.set_level("INFO", logger="longdoc")
    # a learning rate too small to move anything: stage 2 must score what stage 1's best scored
    result = train_classifier(data["train"], data["dev"], tmp_path / "m", family="segment", model=str(encoder),
                              chunk_size=14, max_segments=12, epochs=1, learning_rate=1e-12, bf16=False,
                              cache_dir=tmp_path)
    warm = [h for h in result.history if h["stage"] == "head warm-up"]
    (tuned,) = [h for h in result.history if h["stage"] == "fine-tuning"]
    best = max(warm, key=lambda h: h["macro_f1"])  # the first of equals, as SaveBest keeps
    assert len(warm) == 40 and best["macro_f1"] > warm[0]["macro_f1"]
    assert tuned["loss"] == pytest.approx(best["loss"], abs=1e-4)
    assert result.best_stage == "head warm-up" and result.best_when() == f"head warm-up epoch {best['epoch']:g} of 40"
    assert "stage 1 of 2" in caplog.text


def test_multi_label_training(encoder, tmp_path):
    rows = [json.loads(line) for line in write_documents(tmp_path / "x.jsonl", 40, 3).read_text().splitlines()]
    for i, row in enumerate(rows):
        row["label"] = [row["label"]] + (["even"] if i % 2 == 0 else [])
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = train_classifier(tmp_path / "m.jsonl", tmp_path / "m.jsonl", tmp_path / "out", model=str(encoder),
                              freeze_encoder=True, multi_label=True, chunk_size=14, epochs=2, cache_dir=tmp_path)
    classifier = DocumentClassifier.from_pretrained(tmp_path / "out")
    assert classifier.space.multi_label and classifier.space.names == ("alpha", "beta", "even")
    assert "macro_f1" in result.dev_metrics


def test_interrupted_training_keeps_the_saved_checkpoint(encoder, data, tmp_path, monkeypatch):
    out = tmp_path / "model"
    saves = []
    original = SaveBest.on_evaluate

    def interrupt_after_first_save(self, *args, **kwargs):
        original(self, *args, **kwargs)
        saves.append(self.best_epoch)
        raise KeyboardInterrupt

    monkeypatch.setattr(SaveBest, "on_evaluate", interrupt_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(data["train"], data["dev"], out, model=str(encoder), freeze_encoder=True, chunk_size=14,
                         epochs=5, cache_dir=tmp_path)
    assert saves == [1]
    assert DocumentClassifier.from_pretrained(out).predict("w10 w11 w12")[0].labels
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]  # no half-written folder left


# -- errors before training -------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--chunk-size", "100"], "chunk_size=100 is larger than the encoder allows"),
        (["--chunk-size", "20", "--stride", "30"], "stride=30 must be between 1 and chunk_size=20"),
        (["--family", "longformer", "--freeze-encoder"], "--freeze-encoder works with the segment families"),
        (["--epochs", "0"], "--epochs must be positive"),
    ],
)
def test_bad_settings_fail_before_training(encoder, data, tmp_path, capsys, arguments, message):
    code = main(["train", "--model", str(encoder), "--train", str(data["train"]), "--validation", str(data["dev"]),
                 "--output", str(tmp_path / "m")] + arguments)
    assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_unknown_label_at_evaluation_and_bad_model_dirs(frozen_model, tmp_path, capsys):
    out, _ = frozen_model
    (tmp_path / "t.jsonl").write_text('{"text": "w10 w11", "label": "alpha"}\n{"text": "w12", "label": "delta"}\n')
    assert main(["evaluate", str(out), str(tmp_path / "t.jsonl")]) == 1
    assert "t.jsonl:2: label(s) ['delta'] unknown to the model" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), str(tmp_path / "t.jsonl")]) == 1
    assert "not a longdoc or transformers checkpoint" in capsys.readouterr().err
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text('{"model_type": "bert"}')
    assert main(["predict", str(tmp_path / "enc"), str(tmp_path / "t.jsonl")]) == 1
    assert "is not a longdoc document classifier" in capsys.readouterr().err
