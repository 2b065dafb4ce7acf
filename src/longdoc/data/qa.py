"""Reading extractive question-answering data: SQuAD JSON (v1.1 and v2.0) or JSON lines.

Two layouts are read, told apart by content (not by suffix):

* SQuAD JSON: ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
  "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``; a v2.0 question with
  ``"is_impossible": true`` has no answers (its ``plausible_answers`` are ignored);
* JSON lines, one question per line: ``{"id", "question", "context", "answers": {"text": [...],
  "answer_start": [...]}}`` (the Hugging Face ``squad`` layout); empty lists mean unanswerable.

Every record is checked before anything is returned and the first few problems are reported at
once, as a :class:`DataError` naming the file and the line (JSON lines) or the path inside the
SQuAD document (``data[3].paragraphs[1].qas[0]``) with the question id, and saying how to fix it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import DataError

MAX_REPORTED_PROBLEMS = 5


class QAAnswer(NamedTuple):
    """One gold answer: its text and the character offset where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class QARecord:
    id: str
    question: str
    context: str
    answers: tuple[QAAnswer, ...]  # empty: the question has no answer in the context
    source: str  # "file:line" or "file: data[i].paragraphs[j].qas[k]", for messages and reports

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def read_qa(path: str | os.PathLike) -> list[QARecord]:
    """All questions of a SQuAD JSON or JSON-lines file, validated (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a SQuAD .json file or a .jsonl file with one question per line")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the JSON
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; write SQuAD JSON or one question per line")
    problems: list[str] = []
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # several JSON values: JSON lines (or neither, found line by line)
    if isinstance(whole, dict) and "data" in whole:
        records = _read_squad(path, whole, problems, {})
    elif whole is not None and not isinstance(whole, dict):
        raise DataError(f"{path}: neither SQuAD JSON nor JSON lines: the file is one JSON "
                        f"{type(whole).__name__}; {_LAYOUTS}")
    else:
        records = _read_jsonl(path, text, problems, {})
    if problems:
        more = len(problems) - MAX_REPORTED_PROBLEMS
        shown = problems[:MAX_REPORTED_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
        raise DataError(f"{len(problems)} problem(s) in the question-answering data of {path}:\n  " + "\n  ".join(shown))
    if not records:
        raise DataError(f"{path}: the file holds no questions; {_LAYOUTS}")
    return records


_LAYOUTS = ('expected SQuAD JSON ({"data": [{"paragraphs": [{"context": ..., "qas": [...]}]}]}) or one JSON object '
            'per line like {"id": ..., "question": ..., "context": ..., "answers": {"text": [...], '
            '"answer_start": [...]}}')


# --------------------------------------------------------------------------- SQuAD JSON


def _read_squad(path: Path, document: dict, problems: list[str], ids: dict[str, str]) -> list[QARecord]:
    records = []
    data = document["data"]
    if not isinstance(data, list):
        problems.append(f'{path}: "data" must be a list of articles, got {type(data).__name__}')
        return records
    for i, article in enumerate(data):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            problems.append(f'{path}: data[{i}]: an article must be an object with a "paragraphs" list')
            continue
        for j, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{i}].paragraphs[{j}]"
            if not isinstance(paragraph, dict):
                problems.append(f"{where}: a paragraph must be an object with \"context\" and \"qas\"")
                continue
            context = paragraph.get("context")
            context_problem = _context_problem(context)
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                problems.append(f'{where}: no "qas" list; give the paragraph\'s questions as "qas": [...]')
                continue
            for k, qa in enumerate(qas):
                source = f"{where}.qas[{k}]"
                if not isinstance(qa, dict):
                    problems.append(f"{where}.qas[{k}]: a question must be a JSON object")
                    continue
                label = f"{where}.qas[{k}] (id {qa.get('id')!r})"
                valid_id = _check_id(qa.get("id"), source, label, ids, problems)
                if context_problem:
                    problems.append(f"{label}: {context_problem}")
                    continue
                answers = qa.get("answers", [])
                if qa.get("is_impossible") is True:
                    if answers:
                        problems.append(f'{label}: "is_impossible" is true but "answers" is not empty; give '
                                        f'"answers": [] (keep guesses under "plausible_answers")')
                        continue
                    pairs = []
                elif isinstance(answers, list) and all(isinstance(a, dict) for a in answers):
                    pairs = [(a.get("text"), a.get("answer_start")) for a in answers]
                else:
                    problems.append(f'{label}: "answers" must be a list of {{"text": ..., "answer_start": ...}}')
                    continue
                record = _record(qa, context, pairs, source, label, problems)
                if record is not None and valid_id:
                    records.append(record)
    return records


# --------------------------------------------------------------------------- JSON lines


def _read_jsonl(path: Path, text: str, problems: list[str], ids: dict[str, str]) -> list[QARecord]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == 1:
                raise DataError(f"{path}: neither SQuAD JSON nor JSON lines (line 1: {error.msg} at column "
                                f"{error.colno}); {_LAYOUTS}") from None
            problems.append(f"{where}: malformed JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a JSON object, got {type(row).__name__}")
            continue
        if number == 1 and not {"question", "context"} & set(row):
            raise DataError(f"{path}: neither SQuAD JSON nor question-answering JSON lines (line 1 has keys "
                            f"{', '.join(map(str, row)) or 'none'}); {_LAYOUTS}")
        label = f"{where} (id {row.get('id')!r})"
        valid_id = _check_id(row.get("id"), where, label, ids, problems)
        context_problem = _context_problem(row.get("context"))
        if context_problem:
            problems.append(f"{label}: {context_problem}")
            continue
        pairs = _jsonl_answers(row.get("answers"), label, problems)
        if pairs is None:
            continue
        record = _record(row, row["context"], pairs, where, label, problems)
        if record is not None and valid_id:
            records.append(record)
    return records


def _jsonl_answers(answers, label: str, problems: list[str]) -> list[tuple] | None:
    if not isinstance(answers, dict) or not isinstance(answers.get("text"), list) \
            or not isinstance(answers.get("answer_start"), list):
        problems.append(f'{label}: "answers" must be {{"text": [...], "answer_start": [...]}} (empty lists for a '
                        f"question without an answer), got {json.dumps(answers)[:80]}")
        return None
    texts, starts = answers["text"], answers["answer_start"]
    if len(texts) != len(starts):
        problems.append(f'{label}: {len(texts)} answer texts but {len(starts)} answer_start values; give one '
                        f"start offset per answer text")
        return None
    return list(zip(texts, starts))


# --------------------------------------------------------------------------- checks shared by both layouts


def _context_problem(context) -> str | None:
    if context is None:
        return 'no "context": give the text the answers are taken from'
    if not isinstance(context, str):
        return f'"context" must be a string, got {type(context).__name__}'
    if not context.strip():
        return '"context" is empty: give the text the answers are taken from'
    return None


def _record(row: dict, context: str, pairs: list[tuple], source: str, label: str,
            problems: list[str]) -> QARecord | None:
    """The record of one question (its id checked before), or None after noting its problems."""
    found = len(problems)
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        problems.append(f'{label}: empty question; give the question text under "question" or remove the record')
    answers = []
    for index, (text, start) in enumerate(pairs):
        answer = _answer_problem(text, start, context)
        if answer:
            problems.append(f"{label}: answer {index}: {answer}")
        else:
            answers.append(QAAnswer(text, start))
    if len(problems) > found:
        return None
    return QARecord(str(row.get("id")), question, context, tuple(answers), source)


def _answer_problem(text, start, context: str) -> str | None:
    if not isinstance(text, str) or not text:
        return f"the answer text must be a non-empty string, got {text!r}; drop the answer if there is none"
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        return f"answer_start must be a character offset (an integer >= 0), got {start!r}"
    if context[start : start + len(text)] == text:
        return None
    where = context.find(text)
    fix = (f"set answer_start to {where}, where the text first occurs" if where >= 0
           else "the text does not occur in the context at all: copy it exactly from the context")
    return (f"answer_start {start} points at {context[start : start + len(text)]!r} but the answer text is "
            f"{text!r}; {fix}")



def _check_id(identifier, source: str, label: str, ids: dict[str, str], problems: list[str]) -> bool:
    """Whether the id is present and new (else a problem is noted); ``ids``: id -> where first seen."""
    if identifier is None or isinstance(identifier, (dict, list, bool)) or not str(identifier).strip():
        problems.append(f'{label}: missing "id"; give every question a unique id')
        return False
    if str(identifier) in ids:
        problems.append(f"{label}: duplicate id (first at {ids[str(identifier)]}); give every question its own id")
        return False
    ids[str(identifier)] = source
    return True
