"""SQuAD metrics (longdoc.metrics.qa): hand-computed cases, and the SQuAD v2.0 evaluation logic of
transformers 4.x (`transformers.data.metrics.squad_metrics`, gone from transformers 5) as the oracle
on random predictions, run in an oracle virtualenv."""

import json
import math
import os
import random
import subprocess
from pathlib import Path

import pytest

from longdoc.data.qa import QAAnswer, QARecord
from longdoc.metrics.qa import (answer_token_start, exact_match, gold_texts, metrics_by_answer_position,
                                normalize_answer, squad_metrics, token_f1)

ROOT = Path(__file__).resolve().parents[1]
ORACLE_SCRIPT = ROOT / "tests" / "oracles" / "squad_metrics_oracle.py"


def _record(qid: str, *answers: str, context: str | None = None) -> QARecord:
    """A record whose context holds its answers (each at the offset given)."""
    context = context if context is not None else " | ".join(["intro", *answers])
    spans = tuple(QAAnswer(a, context.index(a)) for a in answers)
    return QARecord(qid, f"question {qid}?", context, spans, f"test:{qid}")


# --------------------------------------------------------------------------- hand-computed


@pytest.mark.parametrize("text, normalised", [
    ("The  Quick, brown fox!", "quick brown fox"),  # article, punctuation, doubled space, case
    ("an apple a day", "apple day"),
    ("Theory of another", "theory of another"),  # articles only as whole words
    ("the-end", "theend"),  # punctuation goes before articles, so "the" is no longer a word
    ("U.S.A.", "usa"),
    ("Python’s “quotes”", "python’s “quotes”"),  # only ASCII punctuation is removed (as the script does)
    ("  A  ", ""),
])
def test_normalisation_is_the_official_one(text, normalised):
    assert normalize_answer(text) == normalised


def test_exact_match_and_f1_by_hand():
    # gold tokens [cat, sat, on, mat], predicted [cat, on, mat]: 3 shared, P = 3/3, R = 3/4, F1 = 6/7
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    assert exact_match("the cat sat on the mat", "a cat on a mat") == 0
    # repeated tokens count once per occurrence: min(2, 3) = 2 cats shared, P = R = 2/3
    assert token_f1("cat cat dog", "cat cat cat") == pytest.approx(2 / 3)
    assert token_f1("Denver Broncos", "broncos!") == pytest.approx(2 / 3)  # P 1, R 1/2
    assert exact_match("Denver Broncos", "the denver broncos.") == 1
    assert token_f1("alpha", "beta") == 0.0
    # an empty side: 1 only if both are empty
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("", "x") == 0.0
    assert token_f1("the", "") == 1.0  # "the" normalises to nothing


def test_best_over_several_gold_answers():
    record = _record("q", "Denver Broncos", "Broncos", "the Denver team")
    metrics = squad_metrics({"q": "the Broncos"}, [record])
    assert metrics == {"exact_match": 100.0, "f1": 100.0, "total": 1}  # equal to the 2nd gold
    metrics = squad_metrics({"q": "Denver"}, [record])
    # F1 against each gold: 2/3 (P 1, R 1/2), 0, 2/3 ([denver, team]); EM 0
    assert metrics["exact_match"] == 0.0 and metrics["f1"] == pytest.approx(100 * 2 / 3)


def test_empty_predictions_and_unanswerable_questions():
    answerable = _record("a", "forty two")
    unanswerable = QARecord("u", "what?", "no answer here", (), "test:u")
    only_article = _record("t", "The")  # a gold that normalises to nothing: the v2.0 script drops it
    assert gold_texts(unanswerable) == [""] and gold_texts(only_article) == [""]
    assert squad_metrics({"a": ""}, [answerable])["exact_match"] == 0.0
    metrics = squad_metrics({"a": "forty-two", "u": "", "t": ""}, [answerable, unanswerable, only_article])
    # a: "fortytwo" vs "forty two": EM 0, F1 0; u: "" on unanswerable: 1; t: gold "" so "" scores 1
    assert metrics["exact_match"] == pytest.approx(200 / 3) and metrics["f1"] == pytest.approx(200 / 3)
    # "t" has an answer text, so it counts as answerable (HasAns), as in the script
    assert (metrics["HasAns_total"], metrics["NoAns_total"]) == (2, 1)
    assert metrics["HasAns_exact"] == 50.0 and metrics["NoAns_exact"] == 100.0


def _four_questions():
    records = [_record("q1", "Paris"), _record("q2", "red green"),
               QARecord("q3", "?", "nothing", (), "t:3"), QARecord("q4", "?", "nothing", (), "t:4")]
    # q1 exact; q2 shares [red] of gold [red, green] with [red, blue]: P 1/2, R 1/2, F1 1/2
    predictions = {"q1": "paris", "q2": "red blue", "q3": "", "q4": "foo"}
    return records, predictions


def test_squad_v2_totals_and_best_thresholds_by_hand():
    records, predictions = _four_questions()
    probabilities = {"q1": 0.1, "q2": 0.6, "q3": 0.9, "q4": 0.7}
    m = squad_metrics(predictions, records, probabilities)
    # per question EM / F1: q1 1/1, q2 0/0.5, q3 1/1 ("" on unanswerable), q4 0/0
    assert (m["exact_match"], m["f1"], m["total"]) == (50.0, 62.5, 4)
    assert (m["HasAns_exact"], m["HasAns_f1"], m["HasAns_total"]) == (50.0, 75.0, 2)
    assert (m["NoAns_exact"], m["NoAns_f1"], m["NoAns_total"]) == (50.0, 50.0, 2)
    # find_best_thresh: start at 2 (answer nothing: q3, q4 right), then by probability
    # EM: q1 +1 -> 3 (best, at 0.1), q2 +0 -> 3, q4 answered "foo" -1 -> 2, q3 +0 -> 2
    assert (m["best_exact"], m["best_exact_thresh"]) == (75.0, 0.1)
    # F1: q1 +1 -> 3 (0.1), q2 +0.5 -> 3.5 (best, at 0.6), q4 -1 -> 2.5, q3 -> 2.5
    assert (m["best_f1"], m["best_f1_thresh"]) == (87.5, 0.6)
    # the threshold found reproduces its score when applied (no ties among the probabilities)
    applied = squad_metrics(predictions, records, probabilities, no_answer_threshold=m["best_f1_thresh"])
    assert applied["f1"] == m["best_f1"] and applied["NoAns_exact"] == 100.0
    # without probabilities all are 0, tied, walked in record order (the script's way with ties):
    # F1: 2, q1 -> 3, q2 -> 3.5 (best), q3 -> 3.5, q4 -> 2.5; EM: 2, 3 (best), 3, 3, 2
    plain = squad_metrics(predictions, records)
    assert (plain["best_f1"], plain["best_f1_thresh"], plain["best_exact"]) == (87.5, 0.0, 75.0)


def test_only_answerable_sets_have_no_v2_keys_and_bad_input_is_explained():
    records, predictions = _four_questions()
    assert set(squad_metrics(predictions, records[:2])) == {"exact_match", "f1", "total"}
    with pytest.raises(ValueError, match=r"no prediction for 1 of 4 questions \(q4\).*predict \"\""):
        squad_metrics({k: v for k, v in predictions.items() if k != "q4"}, records)
    with pytest.raises(ValueError, match="no no-answer probability for 1 questions"):
        squad_metrics(predictions, records, {"q1": 0.1, "q2": 0.1, "q3": 0.1})
    with pytest.raises(ValueError, match="unique"):
        squad_metrics(predictions, records + records[:1])


# --------------------------------------------------------------------------- by answer position


def test_metrics_by_answer_position_buckets_at_their_edges():
    records = [_record(f"q{i}", "alpha beta") for i in range(7)] + [QARecord("u", "?", "x", (), "t:u")]
    starts = {"q0": 0, "q1": 511, "q2": 512, "q3": 2047, "q4": 2048, "q5": 4095, "q6": 4096}
    predictions = {"q0": "alpha beta", "q1": "alpha", "q2": "", "q3": "Alpha beta.", "q4": "beta",
                   "q5": "alpha beta", "q6": "gamma", "u": ""}
    table = metrics_by_answer_position(predictions, records, starts)
    assert list(table) == ["<512", "512-2048", "2048-4096", ">=4096"]  # the unanswerable "u" in none
    assert table["<512"] == {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 2), "count": 2}
    assert table["512-2048"] == {"exact_match": 50.0, "f1": 50.0, "count": 2}  # "" then exact
    assert table["2048-4096"] == {"exact_match": 50.0, "f1": pytest.approx(100 * (2 / 3 + 1) / 2), "count": 2}
    assert table[">=4096"] == {"exact_match": 0.0, "f1": 0.0, "count": 1}
    wide = metrics_by_answer_position(predictions, records, starts, buckets=(10_000,))
    assert wide == {"<10000": {"exact_match": pytest.approx(300 / 7), "f1": pytest.approx(wide["<10000"]["f1"]),
                               "count": 7}, ">=10000": {"exact_match": None, "f1": None, "count": 0}}
    with pytest.raises(ValueError, match="no token start for 1"):
        metrics_by_answer_position(predictions, records, {k: v for k, v in starts.items() if k != "q6"})


def test_answer_token_start_counts_the_context_tokens_before_the_answer():
    from transformers import AutoTokenizer

    from longdoc.assets import packaged_minilm

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    rng = random.Random(0)
    words = ["tokenization", "of", "Python's", "FAQ", "unbelievably", "(see", "below)", "3.11", "naïve"]
    for trial in range(20):
        before = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 900)))
        answer = "the answer is forty-two"
        context = f"{before} {answer} and more words after it." if before else f"{answer} then more."
        record = _record("q", answer, context=context)
        expected = len(tokenizer(before, add_special_tokens=False)["input_ids"]) if before else 0
        position = answer_token_start(tokenizer, record)
        assert position == expected  # beyond the model's 512 too: the context is tokenized alone
        offsets = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert context[offsets[position][0]:].startswith("the answer")
    with pytest.raises(ValueError, match="has no answer"):
        answer_token_start(tokenizer, QARecord("u", "?", "x", (), "t:u"))


# --------------------------------------------------------------------------- against transformers 4.x


def _oracle_python() -> Path | None:
    """transformers 4.x: the QA oracle venv (4.57), else the LSG one (4.36); transformers 5 has no squad_metrics."""
    override = os.environ.get("LONGDOC_SQUAD_ORACLE")
    candidates = [Path(override)] if override else [ROOT / ".venv-qa" / "bin" / "python",
                                                     ROOT / ".venv-lsg" / "bin" / "python"]
    return next((path for path in candidates if path.exists()), None)


PIECES = ["The", "the", "a", "An", "cat", "Cat,", "dog.", "Python's", "C++", "3.11", "éclair", "naïve", "—", "!",
          "(x)", "the-end", "an", "theory", "red", "Red", "blue", "U.S.", "’s", "", "  "]


def _random_case(rng: random.Random, size: int) -> dict:
    def phrase(n: int) -> str:
        return " ".join(rng.choice(PIECES) for _ in range(n))

    questions, predictions = [], {}
    for index in range(size):
        golds = [phrase(rng.randrange(1, 5)) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
        golds = [g for g in golds if g]  # a QARecord answer is a non-empty span
        kind = rng.random()
        if kind < 0.2:
            prediction = ""
        elif kind < 0.5 and golds:  # a gold answer, perturbed in case, punctuation or articles
            prediction = rng.choice(golds)
            prediction = rng.choice([prediction.upper(), prediction + ".", "the " + prediction, prediction])
        elif kind < 0.7 and golds:  # part of a gold answer and some other words
            tokens = rng.choice(golds).split()
            prediction = " ".join(tokens[: rng.randrange(1, len(tokens) + 1)]) + " " + phrase(rng.randrange(0, 3))
        else:
            prediction = phrase(rng.randrange(1, 6))
        questions.append({"id": f"q{index}", "answers": golds})
        predictions[f"q{index}"] = prediction
    probabilities = None
    if rng.random() < 0.7:  # rounded to tenths, so ties happen
        probabilities = {q["id"]: round(rng.random(), 1) for q in questions}
    return {"questions": questions, "predictions": predictions, "no_answer_probabilities": probabilities,
            "threshold": rng.choice([1.0, 0.5, 0.3])}


def test_scores_equal_the_transformers_squad_v2_evaluation():
    python = _oracle_python()
    if python is None:
        if os.environ.get("LONGDOC_REQUIRE_ORACLE"):
            raise RuntimeError("no transformers 4.x oracle venv (.venv-qa or .venv-lsg): run `make oracle`")
        pytest.skip("no transformers 4.x oracle venv (.venv-qa or .venv-lsg): `make oracle` builds them")
    rng = random.Random(14)
    cases = [_random_case(rng, rng.randrange(1, 25)) for _ in range(40)]
    assert sum(len(c["questions"]) for c in cases) >= 300
    result = subprocess.run([str(python), str(ORACLE_SCRIPT)], input=json.dumps(cases), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    compared_v2 = 0
    for case, expected in zip(cases, json.loads(result.stdout)):
        records = [QARecord(q["id"], "?", " ".join(["ctx", *q["answers"]]),
                            tuple(QAAnswer(a, (" ".join(["ctx", *q["answers"]])).index(a)) for a in q["answers"]),
                            "oracle") for q in case["questions"]]
        for record in records:  # every prediction / gold pair
            golds, prediction = gold_texts(record), case["predictions"][record.id]
            assert max(exact_match(g, prediction) for g in golds) == expected["exact"][record.id]
            assert max(token_f1(g, prediction) for g in golds) == pytest.approx(expected["f1"][record.id], abs=1e-12)
        ours = squad_metrics(case["predictions"], records, case["no_answer_probabilities"], case["threshold"])
        theirs = {("exact_match" if key == "exact" else key): value for key, value in expected["evaluation"].items()}
        if all(r.answerable for r in records):  # transformers always adds HasAns and best_*; we only with NoAns
            theirs = {key: theirs[key] for key in ("exact_match", "f1", "total")}
        else:
            compared_v2 += 1
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            assert math.isclose(ours[key], value, rel_tol=1e-12, abs_tol=1e-12), (key, ours[key], value, case)
    assert compared_v2 >= 20
