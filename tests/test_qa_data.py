"""Reading question-answering data (longdoc.data.qa): SQuAD JSON v1.1 / v2.0 and JSON lines, and the
errors that name the file, the line or the place in the SQuAD document, and the fix."""

import json
import random

import pytest

from longdoc.errors import DataError
from longdoc.data.qa import QAAnswer, read_qa


def _squad(articles) -> dict:
    return {"version": "v2.0", "data": articles}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _random_questions(seed: int, count: int):
    """(context, [(id, question, [(text, start), ...]), ...]) with answers at offsets found by
    construction: words are drawn, answers are slices of them (repeated words make offsets matter)."""
    rng = random.Random(seed)
    words = [rng.choice(["alpha", "beta", "gamma", "délta", "中文", "x", "the"]) for _ in range(rng.randrange(5, 60))]
    context = " ".join(words)
    starts = [0]
    for word in words[:-1]:
        starts.append(starts[-1] + len(word) + 1)
    questions = []
    for index in range(count):
        answers = []
        for _ in range(rng.choice([0, 1, 1, 3])):
            first = rng.randrange(len(words))
            last = rng.randrange(first, min(len(words), first + 4))
            answers.append((" ".join(words[first : last + 1]), starts[first]))
        questions.append((f"{seed}-{index}", f"question {index}?", answers))
    return context, questions


def test_squad_and_jsonl_hold_the_same_random_records(tmp_path):
    paragraphs = [_random_questions(seed, 4) for seed in range(6)]
    squad = _squad([{"title": f"t{a}", "paragraphs": [
        {"context": context, "qas": [{"id": qid, "question": q, "is_impossible": not answers,
                                      "answers": [{"text": t, "answer_start": s} for t, s in answers]}
                                     for qid, q, answers in qas]}
        for context, qas in paragraphs[a * 3 : a * 3 + 3]]} for a in range(2)])
    (tmp_path / "set.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    rows = [{"id": qid, "question": q, "context": context,
             "answers": {"text": [t for t, _ in answers], "answer_start": [s for _, s in answers]}}
            for context, qas in paragraphs for qid, q, answers in qas]
    from_squad = read_qa(tmp_path / "set.json")
    from_jsonl = read_qa(_write_jsonl(tmp_path / "set.jsonl", rows))
    strip = [(r.id, r.question, r.context, r.answers) for r in from_squad]
    assert strip == [(r.id, r.question, r.context, r.answers) for r in from_jsonl]
    assert len(from_squad) == 24 and {r.answerable for r in from_squad} == {True, False}
    for record in from_squad:
        for answer in record.answers:
            assert record.context[answer.start : answer.end] == answer.text
    assert from_squad[5].source == f"{tmp_path / 'set.json'}: data[0].paragraphs[1].qas[1]"
    assert from_jsonl[5].source == f"{tmp_path / 'set.jsonl'}:6"
    expected = [(qid, tuple(answers)) for _, qas in paragraphs for qid, _, answers in qas]
    assert [(r.id, r.answers) for r in from_jsonl] == expected  # QAAnswer is a (text, start) pair


def test_squad_v1_several_answers_and_v2_impossible(tmp_path):
    context = "Super Bowl 50 was won by the Denver Broncos in Santa Clara."
    squad = _squad([{"title": "SB", "paragraphs": [{"context": context, "qas": [
        {"id": "v1", "question": "Who won?", "answers": [
            {"text": "Denver Broncos", "answer_start": 29}, {"text": "the Denver Broncos", "answer_start": 25},
            {"text": "Denver Broncos", "answer_start": 29}]},
        {"id": "v2", "question": "Who lost?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Santa Clara", "answer_start": 47}]},
    ]}]}])
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    won, lost = read_qa(tmp_path / "dev.json")
    assert won.answers == (QAAnswer("Denver Broncos", 29), QAAnswer("the Denver Broncos", 25),
                           QAAnswer("Denver Broncos", 29))
    assert won.answerable and not lost.answerable and lost.answers == ()


def _error(tmp_path, name, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_qa(path)
    return str(info.value)


def test_jsonl_problems_name_file_line_and_fix_all_at_once(tmp_path):
    rows = [
        {"id": "a", "question": "Who?", "context": "Alice met Bob.", "answers": {"text": ["Bob"], "answer_start": [4]}},
        {"id": "b", "question": "  ", "context": "x", "answers": {"text": [], "answer_start": []}},
        {"id": "c", "question": "Q?", "answers": {"text": [], "answer_start": []}},
        {"id": "d", "question": "Q?", "context": "x y", "answers": {"text": ["y"], "answer_start": [2, 0]}},
        {"question": "Q?", "context": "x y", "answers": {"text": ["y"], "answer_start": [2]}},
        {"id": "a", "question": "Q?", "context": "x y", "answers": {"text": ["y"], "answer_start": [2]}},
    ]
    message = _error(tmp_path, "bad.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "bad.jsonl"
    assert message.startswith(f"6 problem(s) in the question-answering data of {path}")
    assert (f"{path}:1 (id 'a'): answer 0: answer_start 4 points at 'e m' but the answer text is 'Bob'; "
            f"set answer_start to 10") in message
    assert f"{path}:2 (id 'b'): empty question" in message
    assert f"{path}:3 (id 'c'): no \"context\"" in message
    assert f"{path}:4 (id 'd'): 1 answer texts but 2 answer_start values" in message
    assert f"{path}:5 (id None): missing \"id\"" in message
    assert "... and 1 more" in message  # the 6th (duplicate) is counted, not shown
    message = _error(tmp_path, "dup.jsonl", "".join(json.dumps(r) + "\n" for r in rows[5:] + rows[5:]))
    assert f"{path.with_name('dup.jsonl')}:2 (id 'a'): duplicate id (first at {path.with_name('dup.jsonl')}:1)" in message


def test_squad_problems_name_the_path_and_id(tmp_path):
    context = "The answer is 42."
    squad = _squad([{"paragraphs": [
        {"context": context, "qas": [{"id": "ok", "question": "What?", "answers": [{"text": "42", "answer_start": 14}]},
                                     {"id": "off", "question": "What?", "answers": [{"text": "43", "answer_start": 14}]}]},
        {"qas": [{"id": "noctx", "question": "What?", "answers": []}]},
        {"context": context, "qas": [{"id": "ok", "question": "Again?", "answers": []},
                                     {"id": "imp", "question": "?", "is_impossible": True,
                                      "answers": [{"text": "42", "answer_start": 14}]}]},
    ]}])
    message = _error(tmp_path, "bad.json", squad)
    place = f"{tmp_path / 'bad.json'}: data[0]"
    assert (f"{place}.paragraphs[0].qas[1] (id 'off'): answer 0: answer_start 14 points at '42' but the answer "
            f"text is '43'; the text does not occur in the context at all") in message
    assert f"{place}.paragraphs[1].qas[0] (id 'noctx'): no \"context\"" in message
    assert f"{place}.paragraphs[2].qas[0] (id 'ok'): duplicate id (first at {place}.paragraphs[0].qas[0])" in message
    assert f"{place}.paragraphs[2].qas[1] (id 'imp'): \"is_impossible\" is true but \"answers\" is not empty" in message


@pytest.mark.parametrize("name, content, says", [
    ("list.json", [{"id": "a"}], "one JSON list"),
    ("table.csv", "id,question,context\na,b,c\n", "neither SQuAD JSON nor JSON lines (line 1"),
    ("other.jsonl", '{"text": "a document", "label": "x"}\n', "line 1 has keys text, label"),
    ("empty.json", "  \n", "the file is empty"),
    ("nothing.json", {"data": []}, "holds no questions"),
])
def test_files_that_are_neither_layout_are_explained(tmp_path, name, content, says):
    message = _error(tmp_path, name, content)
    assert says in message and str(tmp_path / name) in message
    if "holds no" not in message and "empty" not in message:
        assert '"answers": {"text": [...]' in message  # shows the expected layouts


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_qa(tmp_path / "absent.jsonl")
