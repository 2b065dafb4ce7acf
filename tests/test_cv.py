"""Cross-validation: the folds (stratified, iterative for multi-label, grouped, reproducible), their
errors, the report's statistics, and `longdoc cv` end to end on a tiny encoder (the frozen segment
classifier encodes every document once)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math
import random
import statistics
from collections import Counter

import pytest

from longdoc.cli import main
from longdoc.data.folds import assign_folds, check_folds, dev_split, iterative_stratification, label_proportions
from longdoc.training.cv_report import aggregate

from tiny_checkpoints import tiny_bert, write_documents


def single(*counts: int) -> list[tuple[str]]:
    return [(f"c{k}",) for k, n in enumerate(counts) for _ in range(n)]


def members(fold_of: list[int], fold: int) -> list[int]:
    return [i for i, f in enumerate(fold_of) if f == fold]


# -- folds -------------------------------------------------------------------------------------------


def test_stratified_folds_have_the_class_proportions_of_the_whole():
    labels = single(30, 15, 10)
    fold_of = assign_folds(5, labels=labels, seed=1)
    for fold in range(5):
        assert Counter(labels[i][0] for i in members(fold_of, fold)) == {"c0": 6, "c1": 3, "c2": 2}


def test_grouped_folds_never_split_a_group():
    rng = random.Random(0)
    groups = [f"g{rng.randrange(25)}" for _ in range(120)]
    labels = [(f"c{int(g[1:]) % 3}",) for g in groups]  # a group's documents share a label, as near-duplicates do
    for kwargs in ({"labels": labels}, {"labels": [("a", "b") if i % 2 else ("a",) for i in range(120)]}, {}):
        fold_of = assign_folds(4, count=120, groups=groups, seed=3, **kwargs)
        for group in set(groups):
            assert len({fold_of[i] for i, g in enumerate(groups) if g == group}) == 1
        assert set(fold_of) == {0, 1, 2, 3}


def skewed_multi_label(count: int = 400, seed: int = 0) -> list[tuple[str, ...]]:
    """Labels of very different frequencies (50% down to 2%), several per document."""
    rng = random.Random(seed)
    rates = {"common": 0.5, "often": 0.3, "some": 0.15, "few": 0.06, "rare": 0.03, "rarest": 0.02}
    return [tuple(label for label, rate in rates.items() if rng.random() < rate) for _ in range(count)]


def proportion_error(labels, fold_of, folds: int) -> float:
    """Mean over folds and labels of |share of the fold holding the label - share in the whole set|."""
    whole = label_proportions(labels, range(len(labels)))
    return statistics.fmean(abs(label_proportions(labels, members(fold_of, fold))[label] - share)
                            for fold in range(folds) for label, share in whole.items())


def test_iterative_stratification_keeps_label_proportions_better_than_random_folds():
    from sklearn.model_selection import KFold

    labels = skewed_multi_label()
    iterative = [proportion_error(labels, assign_folds(5, labels=labels, seed=seed), 5) for seed in range(5)]
    shuffled = []
    for seed in range(5):
        fold_of = [0] * len(labels)
        for fold, (_, held_out) in enumerate(KFold(5, shuffle=True, random_state=seed).split(labels)):
            for index in held_out:
                fold_of[index] = fold
        shuffled.append(proportion_error(labels, fold_of, 5))
    assert statistics.fmean(iterative) < 0.5 * statistics.fmean(shuffled)
    fold_of = assign_folds(5, labels=labels, seed=0)
    rarest = [i for i, document in enumerate(labels) if "rarest" in document]
    assert Counter(fold_of[i] for i in rarest).keys() == {0, 1, 2, 3, 4}  # every fold holds some of it out
    assert sorted(Counter(fold_of).values()) in ([80] * 5, [79, 80, 80, 80, 81])


def test_iterative_stratification_follows_the_desired_proportions():
    labels = skewed_multi_label(300, seed=1)
    side = iterative_stratification(labels, [0.2, 0.8], random.Random(0))
    assert abs(side.count(0) - 60) <= 2


@pytest.mark.parametrize("kind", ["stratified", "multi-label", "grouped", "plain"])
def test_folds_are_reproducible_with_the_seed_and_change_with_another(kind):
    labels = single(200, 100, 100) if kind != "multi-label" else skewed_multi_label(400)
    groups = [f"g{i // 2}" for i in range(400)] if kind == "grouped" else None
    kwargs = {"labels": labels if kind != "plain" else None, "groups": groups, "count": 400}
    first = assign_folds(5, seed=7, **kwargs)
    assert assign_folds(5, seed=7, **kwargs) == first
    assert assign_folds(5, seed=8, **kwargs) != first


def test_the_inner_dev_split_is_stratified_keeps_groups_and_labels_seen_in_training():
    labels = single(50, 25, 5)
    train, dev = dev_split(range(80), labels, share=0.2, seed=0)
    assert sorted(train + dev) == list(range(80))
    assert Counter(labels[i][0] for i in dev) == {"c0": 10, "c1": 5, "c2": 1}
    groups = [f"g{i // 4}" for i in range(80)]
    train, dev = dev_split(range(80), labels, groups, share=0.25, seed=0)
    assert not {groups[i] for i in train} & {groups[i] for i in dev}
    lonely = [("a",)] * 20 + [("b",)]  # the only "b" document must stay in training
    train, dev = dev_split(range(21), lonely, share=0.5, seed=0)
    assert 20 in train


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folds, kwargs, message", [
    (1, {"labels": single(10, 10)}, r"--folds 1: .* at least 2 folds"),
    (5, {"labels": single(10, 3)}, r"class 'c1' has only 3 documents.*--folds 3 or fewer"),
    (4, {"labels": single(10, 10), "groups": [f"g{i % 3}" for i in range(20)]},
     r"only 3 distinct values in the group column 'source'.*--folds 3 or fewer"),
    (3, {"labels": single(12, 6), "groups": [f"g{i % 6}" if i < 12 else "one" for i in range(18)]},
     r"class 'c1' has only 1 group \(column 'source'\)"),
])
def test_impossible_folds_say_what_to_change(folds, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_folds(folds, group_column="source", **kwargs)


def test_an_unknown_group_column_names_the_columns(tmp_path, capsys):
    data = write_documents(tmp_path / "all.jsonl", 12, 0)
    code = main(["cv", "--data", str(data), "--folds", "3", "--group-column", "author", "--model", "unused",
                 "--output", str(tmp_path / "out")])
    assert code == 1
    error = capsys.readouterr().err
    assert "--group-column 'author'" in error and "its columns: id, label, text" in error
    assert not (tmp_path / "out").exists()


def test_cv_refuses_the_flags_of_a_single_training(tmp_path, capsys):
    data = write_documents(tmp_path / "all.jsonl", 12, 0)
    code = main(["cv", "--data", str(data), "--model", "unused", "--output", str(tmp_path / "out"),
                 "--nproc-per-node", "2", "--resume"])
    assert code == 1 and "longdoc cv does not take --nproc-per-node, --resume" in capsys.readouterr().err


def test_the_interval_is_student_t_over_folds():
    stats = aggregate([0.70, 0.74, 0.71, 0.78, 0.72])
    assert stats["mean"] == pytest.approx(0.73) and stats["std"] == pytest.approx(statistics.stdev(stats["values"]))
    half = 2.7764451 * stats["std"] / math.sqrt(5)  # t(0.975, 4)
    assert stats["ci95"] == pytest.approx([0.73 - half, 0.73 + half])


# -- longdoc cv end to end --------------------------------------------------------------------------------


def test_longdoc_cv_of_a_frozen_segment_classifier(tmp_path, capsys):
    encoder = tiny_bert(tmp_path / "bert")
    data = write_documents(tmp_path / "all.jsonl", 30, 0)
    output = tmp_path / "cv"
    argv = ["cv", "--data", str(data), "--folds", "3", "--model", str(encoder), "--family", "segment",
            "--freeze-encoder", "--chunk-size", "14", "--epochs", "3", "--learning-rate", "3e-3", "--batch-size", "8",
            "--cache-dir", str(tmp_path / "cache"), "--output", str(output)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out.strip()
    summary = json.loads(stdout)  # one JSON object, nothing else on stdout
    assert summary["method"] == "stratified" and len(summary["per_fold"]) == 3
    for name in ("macro_f1", "accuracy"):
        stats = summary["metrics"][name]
        values = [fold["test"][name] for fold in summary["per_fold"]]
        assert stats["values"] == values
        assert stats["mean"] == pytest.approx(statistics.fmean(values))
        assert stats["std"] == pytest.approx(statistics.stdev(values))
        half = 4.3026527 * stats["std"] / math.sqrt(3)  # t(0.975, 2)
        assert stats["ci95"] == pytest.approx([stats["mean"] - half, stats["mean"] + half])
    # every document held out exactly once, and encoded once: the later folds read the cache only
    folds = json.loads((output / "folds.json").read_text())["folds"]
    assert sorted(row for fold in folds for row in fold["test"]) == sorted(f"doc{i}" for i in range(30))
    assert summary["vector_cache"]["encoded_documents_per_fold"] == [30, 0, 0]
    assert "folds 2..K encoded nothing" in summary["vector_cache"]["note"]
    assert (output / "cv.md").read_text().count("| macro_f1 |") == 1
    assert (output / "cv.png").stat().st_size > 0 and (output / "cv.json").is_file()
    assert not (output / "fold-1" / "model").exists()  # fold models go once scored (no --keep-models)
    assert (output / "fold-2" / "test_metrics.json").is_file()
    # run again: the folds are the same, so every fold is read back instead of trained again
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip())
    assert again["metrics"] == summary["metrics"]


def test_question_answering_folds_keep_a_context_whole_and_rows_read_back(tmp_path):
    from longdoc.data.qa import read_qa
    from longdoc.tasks import get_task
    from longdoc.training.cv import data_rows, write_jsonl

    from qa_toy_data import write_toy_qa

    task = get_task("qa")
    path = write_toy_qa(tmp_path / "qa.jsonl", 8, seed=0, unanswerable=2)
    rows = [*map(json.loads, path.read_text().splitlines())]
    rows = rows + [{**row, "id": f"{row['id']}-again", "question": "what else?"} for row in rows]  # 2 per context
    write_jsonl(tmp_path / "two.jsonl", rows)
    records = task.read(tmp_path / "two.jsonl", {})
    groups = task.fold_groups(records, {})
    fold_of = assign_folds(4, count=len(records), groups=groups, seed=0)
    for context in set(groups):
        assert len({fold_of[i] for i, g in enumerate(groups) if g == context}) == 1
    write_jsonl(tmp_path / "rows.jsonl", data_rows(tmp_path / "two.jsonl", records))  # what fold files hold
    def fields(record):
        return record.id, record.question, record.context, record.answers

    assert [*map(fields, read_qa(tmp_path / "rows.jsonl"))] == [*map(fields, records)]
