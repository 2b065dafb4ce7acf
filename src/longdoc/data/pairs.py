"""Reading (document, summary) pairs from JSON lines or CSV for summarization."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .documents import DataError, read_records


@dataclass(frozen=True)
class Pair:
    text: str
    summary: str | None  # None when the file has no summary column (summarize only)
    source: str  # "file:line"
    id: str | None = None


def read_pairs(path: str | os.PathLike, text_column: str = "text", summary_column: str = "summary",
               require_summaries: bool = True) -> list[Pair]:
    pairs = []
    for where, record in read_records(path):
        if text_column not in record:
            raise DataError(f"{where}: no {text_column!r} field (fields: {', '.join(map(str, record))}); "
                            f"name the document's field with --text-column")
        text = record[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: the {text_column!r} value must be a non-empty string")
        summary = record.get(summary_column)
        if require_summaries and (not isinstance(summary, str) or not summary.strip()):
            raise DataError(f"{where}: no {summary_column!r} text; every training/evaluation pair needs its "
                            f"reference summary (or name its field with --summary-column)")
        identifier = record.get("id")
        pairs.append(Pair(text, summary, where, None if identifier is None else str(identifier)))
    if not pairs:
        raise DataError(f"{path}: the file holds no documents; write one document per line")
    return pairs
