"""K-fold cross-validation of any task: how well a recipe does, with the spread over folds.

    from longdoc.training.cv import cross_validate
    summary = cross_validate("classification", "all.jsonl", "cv-out", folds=5, model="path/to/encoder",
                             family="segment", freeze_encoder=True)
    summary["metrics"]["macro_f1"]   # {"mean", "std", "ci95": [low, high], "values": [one per fold]}

The documents are dealt into folds (`longdoc.data.folds`: stratified, iterative for multi-label,
grouped), saved to `output/folds.json` and `output/fold-k/{train,dev,test}.jsonl`. Each fold trains
on the other folds less an inner dev split (stratified the same way; it picks the best epoch) and is
scored on its held-out part with the task's own evaluation (`Task.evaluate_file`). `output/cv.json`
(what `longdoc cv` prints), `cv.md` and `cv.png` report every metric's mean, standard deviation and
95% confidence interval over folds (`cv_report`).

A frozen encoder maps a segment to the same vector in every fold, so the segment families' vector
cache (keyed by content) is shared: the first fold encodes every document (its training, dev and
test parts together are the whole set) and the later folds read vectors only. The documents each
fold encoded (its cache misses, in this process) are counted and reported (`encoded_documents`), so
that this can be checked.
A fold already scored by an earlier run with the same folds is read back, not trained again.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..data.documents import read_records
from ..data.folds import assign_folds, dev_split, fold_method
from ..errors import DataError
from ..tasks import get_task
from .cv_report import summarize, write_reports
from .train import TRAINING_REPORT, check_output_folder, train

logger = logging.getLogger(__name__)

FOLDS_FILE = "folds.json"
FOLD_RESULT = "result.json"


@dataclass
class FoldFiles:
    number: int  # 1-based
    folder: Path
    train: Path
    dev: Path
    test: Path

    @property
    def model(self) -> Path:
        return self.folder / "model"


def cross_validate(task: str, data: str | Path, output: str | Path, folds: int = 5, group_column: str | None = None,
                   dev_share: float = 0.2, seed: int = 42, model: str | None = None, family: str | None = None,
                   keep_models: bool = False, **options) -> dict:
    """Train and score `folds` models of `task` on `data` (one file of all the documents), each tested on
    the fold it did not see; `options` are `longdoc.training.train`'s. Returns the summary written to
    `output/cv.json`. Fold models are deleted once scored unless `keep_models` (their training
    reports are kept)."""
    chosen = get_task(task).resolve(data, family, options)
    if model is None:
        raise ValueError("give the checkpoint to start from: model='path/to/checkpoint' (--model)")
    examples = chosen.read(data, options)  # every problem of the file, before anything is written
    rows = data_rows(data, examples)
    labels = chosen.fold_labels(examples, options)
    groups = (column_values(rows, group_column, data) if group_column
              else chosen.fold_groups(examples, options))
    group_name = group_column or ("context" if groups is not None else None)
    fold_of = assign_folds(folds, count=len(rows), labels=labels, groups=groups, seed=seed,
                           group_column=group_name or "group")
    output = Path(output)
    check_cv_output(output)
    training = {"model": str(model), "family": family or chosen.default_family,
                "options": {k: v for k, v in options.items() if v is not None}}
    plan = {"data": str(data), "task": chosen.name, "folds": folds, "seed": seed, "dev_share": dev_share,
            "method": fold_method(labels, groups), "group_column": group_name,
            "training": json.loads(json.dumps(training, default=str)), "fold_of_row": fold_of}
    files = write_folds(output, rows, plan, labels, groups)
    frozen = bool(options.get("freeze_encoder"))
    counter = VectorCacheCounter(options.get("cache_dir")) if frozen else None
    results = []
    for fold in files:
        results.append(run_fold(chosen, fold, len(files), model, family, seed, options, counter, keep_models))
    described = {k: v for k, v in plan.items() if k not in ("fold_of_row", "training")}
    summary = summarize(results, {**described, **plan["training"], "output": str(output)})
    if counter is not None:
        summary["vector_cache"] = cache_summary(results, counter.folder)
    write_reports(output, summary)
    return summary


def run_fold(task, fold: FoldFiles, count: int, model, family, seed, options, counter, keep_models) -> dict:
    """Train on the fold's training part, pick by its dev part, score on its held-out part."""
    done = fold.folder / FOLD_RESULT
    if done.is_file():
        logger.info(f"fold {fold.number} of {count}: scored by an earlier run with the same folds ({done})")
        return json.loads(done.read_text())
    before = counter.count() if counter else None
    logger.info(f"fold {fold.number} of {count}: training on {fold.train} (dev {fold.dev}), testing on {fold.test}")
    if fold.model.exists():
        shutil.rmtree(fold.model)  # an interrupted fold starts again
    trained = train(task.name, fold.train, fold.dev, fold.model, model=model, family=family, seed=seed,
                    **{"checkpoints": False, **options})
    if trained.best_epoch is None:
        raise RuntimeError(f"fold {fold.number}: no model was saved (the dev set gave no score)")
    test = task.evaluate_file(fold.model, fold.test, {**options, "from_vector_cache": counter is not None})
    (fold.folder / "test_metrics.json").write_text(json.dumps(test, indent=1))
    report = fold.model / TRAINING_REPORT
    if report.is_file():
        shutil.copy(report, fold.folder / TRAINING_REPORT)
    if not keep_models:
        shutil.rmtree(fold.model)
    result = {"fold": fold.number, "documents": {split: count_lines(getattr(fold, split)) for split in
                                                 ("train", "dev", "test")},
              "best_epoch": trained.best_epoch, "train_seconds": round(trained.seconds, 2),
              "dev": numeric(trained.dev_metrics), "test": numeric(test),
              "model": str(fold.model) if keep_models else None}
    if counter is not None:
        result["encoded_documents"] = counter.count() - before
    done.write_text(json.dumps(result, indent=1))
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result["test"].items() if k in ("macro_f1", "accuracy", "f1",
                                                                                     "exact_match", "rougeL"))
    logger.info(f"fold {fold.number} of {count}: test {scores}")
    return result


# --- the data and its folds ---------------------------------------------------------------------------


def data_rows(path, examples: list) -> list[dict]:
    """One JSON object per example, as the fold files hold them: the file's own records (every column
    kept), or, for question answering (a SQuAD file has no rows), the questions as JSON lines."""
    if examples and hasattr(examples[0], "question") and hasattr(examples[0], "context"):
        return [{"id": r.id, "question": r.question, "context": r.context,
                 "answers": {"text": [a.text for a in r.answers], "answer_start": [a.start for a in r.answers]}}
                for r in examples]
    rows = [record for _, record in read_records(path)]
    if len(rows) != len(examples):
        raise DataError(f"{path}: {len(rows)} records but {len(examples)} examples; cross-validation needs one "
                        f"example per line")
    return rows


def column_values(rows: list[dict], column: str, path) -> list[str]:
    """The group of every row; an error naming the columns there are when one lacks `column`."""
    for number, row in enumerate(rows, 1):
        if column not in row or row[column] in (None, ""):
            columns = ", ".join(sorted(map(str, row))) or "none"
            raise ValueError(f"--group-column {column!r}: record {number} of {path} has no such column (its columns: "
                             f"{columns}); name the column that holds each document's group")
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in (row[column] for row in rows)]


def write_folds(output: Path, rows: list[dict], plan: dict, labels, groups) -> list[FoldFiles]:
    """output/folds.json and output/fold-k/{train,dev,test}.jsonl; a fold scored earlier with other folds
    is forgotten (its result no longer applies)."""
    fold_of = plan["fold_of_row"]
    saved = output / FOLDS_FILE
    same = saved.is_file() and json.loads(saved.read_text()).get("plan") == plan
    assignment = []
    files = []
    for fold in range(plan["folds"]):
        held_out = [i for i, f in enumerate(fold_of) if f == fold]
        rest = [i for i, f in enumerate(fold_of) if f != fold]
        train_part, dev_part = dev_split(rest, labels, groups, share=plan["dev_share"], seed=plan["seed"] + fold)
        folder = output / f"fold-{fold + 1}"
        if not same and (folder / FOLD_RESULT).exists():
            (folder / FOLD_RESULT).unlink()
        parts = {"train": train_part, "dev": dev_part, "test": held_out}
        for split, members in parts.items():
            write_jsonl(folder / f"{split}.jsonl", [rows[i] for i in members])
        files.append(FoldFiles(fold + 1, folder, *(folder / f"{s}.jsonl" for s in ("train", "dev", "test"))))
        assignment.append({"fold": fold + 1, **{split: [row_name(rows, i) for i in members]
                                                for split, members in parts.items()}})
    saved.write_text(json.dumps({"plan": plan, "folds": assignment}, indent=1))
    return files


def row_name(rows: list[dict], index: int):
    """How folds.json names a document: its id where it has one, else its record number (from 1)."""
    identifier = rows[index].get("id")
    return identifier if isinstance(identifier, (str, int)) else index + 1


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def check_cv_output(output: Path) -> None:
    check_output_folder(output, "the folds and reports", "a cross-validation's",
                        lambda folder: (folder / FOLDS_FILE).is_file())


def numeric(metrics: dict) -> dict:
    """The top-level numbers of a metrics dict (per-label tables and matrices stay in the fold's files)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# --- the frozen encoder's vector cache ------------------------------------------------------------------


class VectorCacheCounter:
    """The documents this process has encoded for the segment vector cache (its misses), to tell how many
    a fold encoded; other processes filling the same cache meanwhile do not count."""

    def __init__(self, cache_dir):
        from ..models.segment_encoding import default_cache_dir

        self.folder = Path(cache_dir or default_cache_dir()) / "segment-vectors"

    def count(self) -> int:
        from ..models.segment_encoding import SegmentVectorCache

        return SegmentVectorCache.encoded_documents


def cache_summary(results: list[dict], folder: Path) -> dict:
    encoded = [r.get("encoded_documents") for r in results]
    later = [e for e in encoded[1:] if e is not None]
    note = ("folds 2..K encoded nothing: every segment vector came from the cache the first fold filled"
            if later and not any(later) else
            "later folds encoded documents: the cache did not hold them (another encoder, precision or "
            "segmentation, or a fold read back from an earlier run)" if any(later) else "")
    return {"folder": str(folder), "encoded_documents_per_fold": encoded, "note": note}
