"""HAT classifiers end to end: `longdoc train --family hat` (documents) and `--task sentences` (a label
per sentence), evaluate and predict, on a tiny BERT converted to a tiny HAT (segments of 16 tokens, at
most 8 of them, layout S|SD), and the errors users meet."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import random
import warnings

import pytest

from longdoc import DocumentClassifier, HATForSequenceClassification
from longdoc.cli import main
from longdoc.convert import convert
from longdoc.data.documents import DataError
from longdoc.pipelines import SentenceClassifier, load_pipeline
from longdoc.families.base import TrainingDefaults
from longdoc.tasks.classification import encoder_and_head_optimizer as _optimizer
from longdoc.training.train import train_classifier

from tiny_checkpoints import SIGNAL, WORDS, tiny_bert, write_documents

GEOMETRY = ["--max-sentence-size", "16", "--max-sentences", "8", "--layout", "S|SD"]
FILLER = WORDS[10:30]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("encoder") / "bert")


@pytest.fixture(scope="module")
def hat(encoder, tmp_path_factory):
    """The tiny BERT as a HAT without a head (what `longdoc convert --to hat` writes)."""
    out = tmp_path_factory.mktemp("hat") / "hat"
    convert(encoder, out, to="hat", layout="S|SD", max_sentences=8, max_sentence_size=16)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Documents of 120 one-token words (8 segments of 15 tokens): the label's keyword fills 6 words of
    one segment after the first."""
    folder = tmp_path_factory.mktemp("data")
    return {split: write_documents(folder / f"{split}.jsonl", n, seed) for split, n, seed in
            (("train", 48, 0), ("dev", 16, 1), ("test", 16, 2))}


def _train(arguments: list[str]) -> int:
    return main(["train", *arguments])


@pytest.fixture(scope="module")
def document_model(encoder, data, tmp_path_factory):
    """A HAT document classifier trained through the CLI from the BERT (converted on the way)."""
    out = tmp_path_factory.mktemp("models") / "hat-documents"
    code = _train(["--family", "hat", "--model", str(encoder), "--train", str(data["train"]), "--validation",
                   str(data["dev"]), "--output", str(out), *GEOMETRY, "--epochs", "15", "--learning-rate", "2e-3",
                   "--batch-size", "8"])
    assert code == 0
    return out


def _records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


# -- documents --------------------------------------------------------------------------------


def test_document_classifier_trains_evaluates_and_predicts(document_model, data, tmp_path, capsys):
    config = json.loads((document_model / "config.json").read_text())
    assert config["model_type"] == "hierarchical-transformer"
    assert config["architectures"] == ["HATForSequenceClassification"]
    assert (config["segmentation"], config["truncate_segments"], config["segment_pooling"]) == ("greedy", False, "max")
    report = json.loads((document_model / "training_report.json").read_text())
    assert report["dev_metrics"]["macro_f1"] >= 0.9, report["history"]  # chance is 0.5

    assert main(["evaluate", str(document_model), str(data["test"])]) == 0
    metrics = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert metrics["documents"] == 16 and metrics["accuracy"] >= 0.8, metrics
    assert {"macro_f1", "micro_f1", "per_label", "roc_auc", "confusion_matrix", "tokens_per_second"} <= set(metrics)

    first = json.loads(data["test"].read_text().splitlines()[0])
    (tmp_path / "doc.txt").write_text(first["text"])
    assert main(["predict", str(document_model), str(tmp_path / "doc.txt"), str(data["test"])]) == 0
    records = _records(capsys)
    assert len(records) == 17 and records[0]["document"].endswith("doc.txt") and records[1]["document"] == "doc0"
    assert all(len(r["labels"]) == 1 and sum(r["scores"].values()) == pytest.approx(1, abs=1e-5) for r in records)
    # a document's scores do not depend on the documents batched with it
    assert records[0]["scores"] == pytest.approx(records[1]["scores"], abs=1e-5)
    assert records[1]["labels"] == [first["label"]] or metrics["accuracy"] < 1


def test_document_classifier_from_python(document_model, data):
    classifier = DocumentClassifier.from_pretrained(document_model)
    assert classifier.family.name == "hat" and isinstance(classifier.model, HATForSequenceClassification)
    texts = [json.loads(line)["text"] for line in data["test"].read_text().splitlines()]
    together = classifier.predict(texts)
    alone = classifier.predict(texts[3])[0]
    assert together[3].scores == pytest.approx(alone.scores, abs=1e-5)
    # with the reference's pooling (empty segments read) documents are batched only with their like
    classifier.model.config.pool_empty_segments = True
    short = "w10 w11 w12"  # one segment: batched with longer documents it would be padded with empty ones
    together, alone = classifier.predict(texts + [short]), classifier.predict(short)[0]
    assert together[-1].scores == pytest.approx(alone.scores, abs=1e-5)
    classifier.model.config.pool_empty_segments = False
    assert classifier.predict("w10 w11 w12")[0].labels  # a one-segment document
    with pytest.raises(ValueError, match="explanations are not available for HAT"):
        classifier.predict(texts[0], explain=True)


def test_multi_label_with_attentive_pooling_from_a_hat_checkpoint(hat, tmp_path):
    """Trained from an already converted HAT (used as it is); labels: which keywords a document has."""
    rng = random.Random(5)
    for split, count in (("train", 48), ("dev", 16)):
        with (tmp_path / f"{split}.jsonl").open("w") as handle:
            for index in range(count):
                present = [["alpha"], ["beta"], ["alpha", "beta"], []][index % 4]
                words = [rng.choice(WORDS[10:14]) for _ in range(100)]
                for label in present:
                    start = rng.randrange(0, 94)
                    words[start:start + 6] = [SIGNAL[label]] * 6
                handle.write(json.dumps({"text": " ".join(words), "label": present}) + "\n")
    result = train_classifier(tmp_path / "train.jsonl", tmp_path / "dev.jsonl", tmp_path / "m", family="hat",
                              model=str(hat), multi_label=True, pooling="attentive", epochs=20, learning_rate=2e-3,
                              batch_size=8)
    assert result.dev_metrics["micro_f1"] >= 0.8, result.history  # always predicting both labels scores 0.67
    classifier = DocumentClassifier.from_pretrained(tmp_path / "m")
    assert classifier.space.multi_label and classifier.space.names == ("alpha", "beta")
    assert classifier.model.config.segment_pooling == "attentive"
    metrics = classifier.evaluate(tmp_path / "dev.jsonl")
    assert set(metrics["confusion_matrix"]) == {"alpha", "beta"}
    (prediction,) = classifier.predict(" ".join(["w10"] * 50 + ["w8"] * 6 + ["w11"] * 40))
    assert set(prediction.labels) <= {"alpha", "beta"} and set(prediction.scores) == {"alpha", "beta"}


def test_too_many_segments_is_an_error_unless_truncating(encoder, document_model, data, tmp_path, capsys):
    rng = random.Random(3)
    long_file = tmp_path / "long.jsonl"  # 200 words: 14 segments of 15 tokens
    long_file.write_text("".join(json.dumps({"text": " ".join(rng.choice(FILLER) for _ in range(200)), "label": label})
                                 + "\n" for label in ("alpha", "beta")))
    arguments = ["--family", "hat", "--model", str(encoder), "--train", str(long_file), "--validation",
                 str(data["dev"]), "--output", str(tmp_path / "m"), *GEOMETRY, "--epochs", "1"]
    assert _train(arguments) == 1
    error = capsys.readouterr().err
    assert "long.jsonl:1 needs 14" in error and "--max-sentences" in error and "--truncate" in error
    assert not (tmp_path / "m").exists()
    with pytest.warns(UserWarning, match=r"2 of 2 documents need more than 8 segments .* 12 segments and 160 tokens "
                                         r"are cut \(40% of those documents\)"):
        assert _train([*arguments, "--truncate"]) == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["truncate_segments"] is True

    # a model trained without --truncate refuses a longer document at prediction time too, unless told
    assert main(["predict", str(document_model), str(long_file)]) == 1
    assert "--truncate" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="only their first 8 segments are read"):
        assert main(["predict", str(document_model), str(long_file), "--truncate"]) == 0
    assert len(_records(capsys)) == 2


# -- one label per sentence --------------------------------------------------------------------


def write_sentences(path, count: int, seed: int, multi_label: bool = False, sentences=(3, 8)):
    """Documents of short sentences; a sentence with w7 is "key", else "plain" (multi-label: "seven"
    and/or "eight" by the keywords it has)."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            texts, labels = [], []
            for _ in range(rng.randint(*sentences)):
                words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
                if multi_label:
                    present = [name for name, word in (("seven", "w7"), ("eight", "w8")) if rng.random() < 0.5]
                    for name in present:
                        words[rng.randrange(len(words))] = "w7" if name == "seven" else "w8"
                    labels.append(sorted(set(present)))
                else:
                    key = rng.random() < 0.35
                    if key:
                        words[rng.randrange(len(words))] = "w7"
                    labels.append("key" if key else "plain")
                texts.append(" ".join(words))
            handle.write(json.dumps({"id": f"d{index}", "sentences": texts, "label": labels}) + "\n")
    return path


@pytest.fixture(scope="module")
def sentence_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentences")
    return {split: write_sentences(folder / f"{split}.jsonl", n, seed) for split, n, seed in
            (("train", 40, 0), ("dev", 12, 1), ("test", 12, 2))}


def test_sentence_classification_end_to_end(hat, sentence_data, tmp_path, capsys):
    out = tmp_path / "tagger"
    code = _train(["--task", "sentences", "--model", str(hat), "--train", str(sentence_data["train"]),
                   "--validation", str(sentence_data["dev"]), "--output", str(out), "--epochs", "8",
                   "--learning-rate", "2e-3", "--batch-size", "4"])
    printed = "".join(capsys.readouterr())  # the result on stdout, progress lines on stderr
    assert code == 0 and "sentence classifier" in printed and "dev (sentences): macro-F1" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["HATForSequentialSentenceClassification"]
    report = json.loads((out / "training_report.json").read_text())
    assert report["task"] == "sentences" and report["dev_metrics"]["macro_f1"] >= 0.9, report["history"]

    assert main(["evaluate", str(out), str(sentence_data["test"])]) == 0
    metrics = json.loads(capsys.readouterr().out)
    gold = [json.loads(line)["label"] for line in sentence_data["test"].read_text().splitlines()]
    assert metrics["documents"] == 12 and metrics["sentences"] == sum(map(len, gold))
    assert metrics["macro_f1"] >= 0.8 and metrics["sentences_not_read"] == 0, metrics
    assert metrics["labels"] == ["key", "plain"]

    (tmp_path / "doc.txt").write_text("W10 w11 w7 w12. W13 w14 w15 w16.\n\nW17 w18 w19 w7 w20!")
    assert main(["predict", str(out), str(sentence_data["test"]), str(tmp_path / "doc.txt")]) == 0
    records = _records(capsys)
    assert len(records) == 13 and records[0]["document"] == "d0"
    assert [len(r["labels"]) for r in records[:12]] == [len(g) for g in gold]
    assert all(set(s) == {"key", "plain"} for r in records for s in r["scores"])
    hits = sum(p == g for r, labels in zip(records, gold) for p, g in zip(r["labels"], labels))
    assert hits >= 0.8 * metrics["sentences"]
    split = records[12]
    assert split["sentences"] == ["W10 w11 w7 w12.", "W13 w14 w15 w16.", "W17 w18 w19 w7 w20!"]
    assert len(split["labels"]) == 3 and "sentences_not_read" not in split

    tagger = load_pipeline(out)
    assert isinstance(tagger, SentenceClassifier)
    (prediction,) = tagger.predict([["w10 w7 w11", "w12 w13"]])
    assert len(prediction.labels) == 2 and prediction.unread == 0
    with pytest.raises(DataError, match="sentence classifier"):
        DocumentClassifier.from_pretrained(out)


def test_sentence_multi_label_long_sentences_and_truncation(hat, tmp_path, capsys):
    train = write_sentences(tmp_path / "train.jsonl", 24, 3, multi_label=True)
    dev = write_sentences(tmp_path / "dev.jsonl", 8, 4, multi_label=True)
    result = train_classifier(train, dev, tmp_path / "m", family="hat", task="sentences", model=str(hat),
                              multi_label=True, epochs=1, batch_size=8)
    assert "macro_f1" in result.dev_metrics
    tagger = SentenceClassifier.from_pretrained(tmp_path / "m")
    assert tagger.space.multi_label and tagger.space.names == ("eight", "seven")

    # 10 sentences, one of 30 tokens: too many for a model of 8 segments of 16 tokens
    sentences = [" ".join(["w10"] * 30)] + ["w11 w12"] * 9
    (tmp_path / "long.jsonl").write_text(json.dumps({"sentences": sentences, "label": [[]] * 10}) + "\n")
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "long.jsonl")]) == 1
    error = capsys.readouterr().err
    assert "long.jsonl:1 has 10" in error and "--max-sentences" in error and "--truncate" in error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", str(tmp_path / "m"), str(tmp_path / "long.jsonl"), "--truncate"]) == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "1 sentence is longer than a segment (15 tokens after [CLS])" in messages
    assert "the other 2 sentences are not labelled and not scored" in messages
    (record,) = _records(capsys)
    assert record["sentences_not_read"] == 2 and record["labels"][8:] == [None, None]
    assert all(isinstance(labels, list) for labels in record["labels"][:8])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "long.jsonl"), "--truncate"]) == 0
    assert "not labelled and not scored" in " ".join(str(w.message) for w in caught)
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["sentences"] == 8 and metrics["sentences_not_read"] == 2


def test_mismatched_sentences_and_labels_name_the_line(hat, sentence_data, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"sentences": ["w10", "w11"], "label": ["key", "plain"]}) + "\n"
                   + json.dumps({"sentences": ["w10", "w11", "w12"], "label": ["key", "plain"]}) + "\n")
    code = _train(["--task", "sentences", "--model", str(hat), "--train", str(bad), "--validation",
                   str(sentence_data["dev"]), "--output", str(tmp_path / "m")])
    assert code == 1
    assert "bad.jsonl:2: 3 sentences but 2 labels in 'label'; give exactly one label per sentence" in \
        capsys.readouterr().err
    bad.write_text(json.dumps({"sentences": ["w10", "w11"], "label": ["key", ["plain", "key"]]}) + "\n")
    code = _train(["--task", "sentences", "--model", str(hat), "--train", str(bad), "--validation",
                   str(sentence_data["dev"]), "--output", str(tmp_path / "m")])
    assert code == 1 and "bad.jsonl:1: sentence 2 has 2 labels" in capsys.readouterr().err


def test_too_many_sentences_fail_before_the_encoder_is_converted(encoder, sentence_data, tmp_path, capsys):
    (tmp_path / "long.jsonl").write_text(json.dumps({"sentences": ["w10 w11"] * 9, "label": ["plain"] * 9}) + "\n")
    code = _train(["--task", "sentences", "--model", str(encoder), "--train", str(sentence_data["train"]),
                   "--validation", str(tmp_path / "long.jsonl"), "--output", str(tmp_path / "m"), *GEOMETRY])
    captured = capsys.readouterr()
    assert code == 1 and "converting" not in captured.out
    assert "1 of 41 documents have more sentences than the model's 8 (max_sentences), e.g. " in captured.err
    assert "long.jsonl:1 has 9" in captured.err and "--truncate" in captured.err


# -- errors -----------------------------------------------------------------------------------


def test_a_hat_without_a_head_is_refused_clearly(hat, data, capsys):
    assert main(["predict", str(hat), str(data["test"])]) == 1
    error = capsys.readouterr().err
    assert "a HAT without a classification head (HATModel)" in error and "longdoc train --family hat" in error
    with pytest.raises(DataError, match="without a classification head"):
        DocumentClassifier.from_pretrained(hat)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--task", "sentences", "--family", "segment"], "--task sentences is not trained by --family segment: use "
                                                          "--family hat"),
        (["--family", "segment", "--pooling", "max"], "--pooling max does not apply to --family segment"),
        (["--family", "hat", "--pooling", "cls"], "--pooling cls does not apply to --family hat, which takes max"),
        (["--family", "segment", "--layout", "S|SD"], "--layout apply to --family hat only"),
        (["--family", "hat", "--chunk-size", "14"], "--chunk-size apply to the segment families"),
        (["--family", "hat", "--freeze-encoder"], "a HAT is trained whole"),
        (["--family", "hat", "--max-sentences", "4", "--model-is-hat"], "is already a HAT (8 segments of 16 tokens"),
        (["--family", "hat", "--layout", "S|X"], "layer 1 is 'X'"),
    ],
)
def test_bad_settings_fail_before_training(encoder, hat, data, tmp_path, capsys, arguments, message):
    source = hat if "--model-is-hat" in arguments else encoder
    arguments = [a for a in arguments if a != "--model-is-hat"]
    code = _train(["--model", str(source), "--train", str(data["train"]), "--validation", str(data["dev"]),
                   "--output", str(tmp_path / "m"), *arguments])
    assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_the_head_learns_at_the_head_rate(hat):
    model = HATForSequenceClassification.from_pretrained(hat, num_labels=2)
    optimizer = _optimizer(model, 5e-5, TrainingDefaults(epochs=1, learning_rate=5e-5, batch_size=1,
                                                         head_learning_rate=1e-3))
    encoder, head = optimizer.param_groups
    assert encoder["lr"] == 5e-5 and head["lr"] == 1e-3
    head_names = {n for n, p in model.named_parameters() if any(p is q for q in head["params"])}
    assert head_names == {"pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("task", ["classification", "sequential-sentence-classification"])
def test_sentence_files_train_sentence_classification(hat, sentence_data, tmp_path, capsys, task):
    """Lines of {"sentences": [...], "label": [...]} given to the document task (or the long task name)
    train the sentence task: the data says what it is."""
    out = tmp_path / "tagger"
    code = _train(["--task", task, "--family", "hat", "--model", str(hat), "--train", str(sentence_data["train"]),
                   "--validation", str(sentence_data["dev"]), "--output", str(out), "--epochs", "1"])
    printed = "".join(capsys.readouterr())  # the result on stdout, progress lines on stderr
    assert code == 0 and "dev (sentences)" in printed
    assert ("training sequential sentence classification" in printed) == (task == "classification")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["HATForSequentialSentenceClassification"]
