"""Reading labelled documents from JSON lines or CSV, with errors that name the file and line.

A document file holds one document per line (JSON lines: `{"text": ..., "label": ...}`) or per
row (CSV/TSV with a header). The label is a string (single-label) or a list of strings
(multi-label); other column names are chosen with `text_column` / `label_column`. Every problem
is reported before any model is built, as a `DataError` that says where and what to do.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError  # noqa: F401  (raised here; importable from here as before)

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}


@dataclass(frozen=True)
class Document:
    text: str
    labels: tuple[str, ...] | None  # None: the file has no label column (prediction input)
    source: str  # "file:line", for error messages and reports
    id: str | None = None


def read_documents(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    require_labels: bool = True,
) -> list[Document]:
    """All documents of a JSON-lines or CSV/TSV file (by suffix; anything else is read as JSON lines)."""
    return _read_all(path, lambda record, where: _document(record, where, text_column, label_column, require_labels))


def _read_all(path: str | os.PathLike, parse) -> list:
    """`parse(record, where)` of every record of the file; an error when it holds none."""
    documents = [parse(record, where) for where, record in read_records(path)]
    if not documents:
        raise DataError(f"{path}: the file holds no documents; write one document per line")
    return documents


def read_records(path: str | os.PathLike):
    """(where, record dict) for every line of a JSON-lines file or row of a CSV/TSV file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a .jsonl or .csv file with one document per line")
    if CSV_SUFFIXES.get(path.suffix.lower()):
        return _csv_records(path)
    return _jsonl_records(path)


def _jsonl_records(path: Path):
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{where}: malformed JSON ({error.msg} at column {error.colno}); each line must be one JSON "
                    f'object such as {{"text": "...", "label": "..."}}'
                ) from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
            yield where, record


def _csv_records(path: Path):
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents exceed csv's 128 KiB default
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=CSV_SUFFIXES[path.suffix.lower()])
        if reader.fieldnames is None:
            return
        for row in reader:
            yield f"{path}:{reader.line_num}", row


def _document(record: dict, where: str, text_column: str, label_column: str, require_labels: bool) -> Document:
    if text_column not in record:
        raise DataError(
            f"{where}: no {text_column!r} column (columns: {', '.join(map(str, record)) or 'none'}); "
            f"name the text column with --text-column"
        )
    text = record[text_column]
    if not isinstance(text, str):
        raise DataError(f"{where}: the {text_column!r} value must be a string, got {type(text).__name__}")
    if not text.strip():
        raise DataError(f"{where}: empty document (the {text_column!r} value has no text); remove the line")
    labels = None
    if label_column in record and record[label_column] is not None:
        labels = _labels(record[label_column], where, label_column)
    elif require_labels:
        raise DataError(
            f"{where}: no {label_column!r} column (columns: {', '.join(map(str, record))}); "
            f"name the label column with --label-column"
        )
    identifier = record.get("id")
    return Document(text=text, labels=labels, source=where, id=None if identifier is None else str(identifier))


def _labels(value, where: str, label_column: str) -> tuple[str, ...]:
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:  # a CSV cell holding a JSON list of labels
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    values = value if isinstance(value, list) else [value]
    labels = []
    for item in values:
        if isinstance(item, (dict, list)) or item is None or isinstance(item, float):
            raise DataError(
                f"{where}: {label_column!r} must be a label (string or integer) or a list of labels, got {value!r}"
            )
        text = str(item).strip()
        if not text:
            raise DataError(f"{where}: empty label in {label_column!r}")
        labels.append(text)
    if not isinstance(value, list) and not labels:
        raise DataError(f"{where}: empty label in {label_column!r}")
    return tuple(labels)


# --- one label per sentence ---------------------------------------------------------------------


@dataclass(frozen=True)
class SentenceDocument:
    """A document given as its sentences, with one label (or, multi-label, a list of labels) per sentence."""

    sentences: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...] | None  # per sentence; None: the file has no label column
    source: str  # "file:line"
    id: str | None = None


def read_sentence_documents(
    path: str | os.PathLike,
    sentences_column: str = "sentences",
    label_column: str = "label",
    require_labels: bool = True,
) -> list[SentenceDocument]:
    """All documents of a JSON-lines (or CSV/TSV) file of `{"sentences": [str, ...], "label": [label, ...]}`
    records: one label per sentence, or a list of labels per sentence for multi-label data."""
    return _read_all(path, lambda record, where: _sentence_document(record, where, sentences_column, label_column,
                                                                    require_labels))


def holds_sentence_lists(path: str | os.PathLike, sentences_column: str = "sentences",
                         text_column: str = "text") -> bool:
    """Whether the file's first record is a pre-split document (a list under `sentences_column`,
    no `text_column`): what sequential sentence classification reads."""
    try:
        for _, record in read_records(path):
            return text_column not in record and isinstance(_json_list(record.get(sentences_column)), list)
    except DataError:
        return False
    return False


def _json_list(value):
    """A CSV cell holding a JSON list, as the list (anything else as it is)."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _sentence_document(record: dict, where: str, sentences_column: str, label_column: str,
                       require_labels: bool) -> SentenceDocument:
    if sentences_column not in record:
        raise DataError(
            f"{where}: no {sentences_column!r} column (columns: {', '.join(map(str, record)) or 'none'}); each line "
            f'must be like {{"{sentences_column}": ["first sentence", ...], "{label_column}": ["label", ...]}} '
            f"(name the column with --sentences-column)"
        )
    sentences = _json_list(record[sentences_column])
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise DataError(f"{where}: {sentences_column!r} must be a list of strings (one per sentence), got "
                        f"{type(sentences).__name__}")
    if not sentences or not any(s.strip() for s in sentences):
        raise DataError(f"{where}: empty document (the {sentences_column!r} list has no text); remove the line")
    labels = None
    if label_column in record and record[label_column] is not None:
        value = _json_list(record[label_column])
        if not isinstance(value, list):
            raise DataError(f"{where}: {label_column!r} must be a list with one label per sentence, got {value!r}")
        if len(value) != len(sentences):
            raise DataError(
                f"{where}: {len(sentences)} sentences but {len(value)} labels in {label_column!r}; give exactly one "
                f"label per sentence (a list of labels per sentence for multi-label data)"
            )
        labels = tuple(_sentence_labels(item, f"{where}: sentence {index + 1}", label_column)
                       for index, item in enumerate(value))
    elif require_labels:
        raise DataError(
            f"{where}: no {label_column!r} column (columns: {', '.join(map(str, record))}); "
            f"name the label column with --label-column"
        )
    identifier = record.get("id")
    return SentenceDocument(tuple(sentences), labels, where, None if identifier is None else str(identifier))


def _sentence_labels(value, where: str, label_column: str) -> tuple[str, ...]:
    """One sentence's labels: a label, or a list of labels (possibly empty: none apply)."""
    values = value if isinstance(value, list) else [value]
    labels = []
    for item in values:
        if isinstance(item, (dict, list, bool, float)) or item is None:
            raise DataError(f"{where}: {label_column!r} of a sentence must be a label (string or integer) or a list "
                            f"of labels, got {value!r}")
        text = str(item).strip()
        if not text:
            raise DataError(f"{where}: empty label in {label_column!r}")
        labels.append(text)
    return tuple(labels)
