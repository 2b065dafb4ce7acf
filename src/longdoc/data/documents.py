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

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}


class DataError(ValueError):
    """A document file cannot be used as it is; the message names the file and line."""


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
    documents = []
    for where, record in read_records(path):
        documents.append(_document(record, where, text_column, label_column, require_labels))
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
