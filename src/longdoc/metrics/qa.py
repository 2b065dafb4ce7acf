"""SQuAD metrics for extractive question answering, offline and in pure Python.

The scores are those of the official SQuAD evaluation scripts:

* answers are compared after the v1.1 normalisation: lower case, ASCII punctuation removed, the
  articles a/an/the removed, whitespace collapsed;
* exact match (0/1) and token F1 of a prediction are the best over the gold answers;
* v2.0 rules for unanswerable questions: gold answers that normalise to nothing are dropped, a
  question left without gold has the single gold "" and only the empty prediction scores 1;
* ``best_exact`` / ``best_f1``: the score at the best no-answer probability threshold, found as
  the v2.0 script's ``find_best_thresh`` does (questions in increasing order of their no-answer
  probability, ties in the order of the records; answering nothing everywhere is the start).

``metrics_by_answer_position`` splits the scores by where the answer starts in the context, in
tokens of the model's tokenizer (``answer_token_start``), to show what a long context costs.
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

from ..data.qa import QARecord

logger = logging.getLogger(__name__)

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower, drop punctuation, drop articles, fix whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def token_f1(gold: str, prediction: str) -> float:
    """F1 of the normalised tokens; an empty side scores 1 only when both are empty."""
    gold_tokens, predicted_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    same = sum((Counter(gold_tokens) & Counter(predicted_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_texts(record: QARecord) -> list[str]:
    """The texts a prediction is compared with: the answers that survive normalisation, else [""]."""
    return [answer.text for answer in record.answers if normalize_answer(answer.text)] or [""]


def question_scores(predictions: Mapping[str, str], records: Sequence[QARecord]) -> dict[str, tuple[int, float]]:
    """id -> (exact match, F1) of every record, each the best over its gold answers."""
    _check_predictions(predictions, records)
    scores = {}
    for record in records:
        golds, prediction = gold_texts(record), predictions[record.id]
        scores[record.id] = (max(exact_match(g, prediction) for g in golds),
                             max(token_f1(g, prediction) for g in golds))
    return scores


def squad_metrics(predictions: Mapping[str, str], records: Sequence[QARecord],
                  no_answer_probabilities: Mapping[str, float] | None = None,
                  no_answer_threshold: float = 1.0) -> dict:
    """``exact_match``, ``f1`` (0-100) and ``total`` over ``records``; when some questions are
    unanswerable also ``HasAns_*``, ``NoAns_*`` and ``best_exact[_thresh]``, ``best_f1[_thresh]``.

    ``predictions``: id -> predicted text ("" = no answer) for every record. A question whose
    no-answer probability exceeds ``no_answer_threshold`` counts as answered with "" (with the
    default 1.0, probabilities never do); missing probabilities are an error, none at all means 0.
    """
    scores = question_scores(predictions, records)
    probabilities = _probabilities(no_answer_probabilities, records)
    thresholded = {}
    for record in records:
        if probabilities[record.id] > no_answer_threshold:
            thresholded[record.id] = (float(not record.answerable),) * 2
        else:
            thresholded[record.id] = scores[record.id]
    result = _averages(thresholded, [r.id for r in records], "")
    unanswerable = [r.id for r in records if not r.answerable]
    if unanswerable:
        result.update(_averages(thresholded, [r.id for r in records if r.answerable], "HasAns_"))
        result.update(_averages(thresholded, unanswerable, "NoAns_"))
        for name, column in (("exact", 0), ("f1", 1)):
            best, threshold = best_threshold(predictions, records, {i: s[column] for i, s in scores.items()},
                                             probabilities)
            result[f"best_{name}"], result[f"best_{name}_thresh"] = best, threshold
    return result


def best_threshold(predictions: Mapping[str, str], records: Sequence[QARecord], scores: Mapping[str, float],
                   probabilities: Mapping[str, float]) -> tuple[float, float]:
    """(best score 0-100, its threshold) over no-answer thresholds: the v2.0 ``find_best_thresh``.

    Start from answering nothing (every unanswerable question right) and lower the threshold past
    one question at a time, most confident answer first: that question is now answered, which
    adds its score when it has an answer and costs 1 when it has none but the prediction is not "".
    """
    current = best = sum(not r.answerable for r in records)
    best_at = 0.0
    order = sorted(range(len(records)), key=lambda i: probabilities[records[i].id])  # stable: ties in record order
    for index in order:
        record = records[index]
        if record.answerable:
            current += scores[record.id]
        elif predictions[record.id]:
            current -= 1
        if current > best:
            best, best_at = current, probabilities[record.id]
    return 100.0 * best / len(records), best_at


def metrics_by_answer_position(predictions: Mapping[str, str], records: Sequence[QARecord],
                               token_starts: Mapping[str, int],
                               buckets: Sequence[int] = (512, 2048, 4096)) -> dict[str, dict]:
    """EM / F1 (0-100) and count of the answerable questions, by the token where the first gold
    answer starts in the context: "<512", "512-2048", "2048-4096", ">=4096" for the default
    ``buckets``. ``token_starts``: id -> that token (``answer_token_start``), for every answerable
    record. An empty bucket has count 0 and None scores."""
    if list(buckets) != sorted(set(buckets)) or not buckets or buckets[0] <= 0:
        raise ValueError(f"buckets must be increasing positive token positions, got {tuple(buckets)}")
    answerable = [r for r in records if r.answerable]
    missing = [r.id for r in answerable if r.id not in token_starts]
    if missing:
        raise ValueError(f"no token start for {len(missing)} answerable question(s) ({', '.join(missing[:3])}...); "
                         f"compute one per question with answer_token_start(tokenizer, record)")
    scores = question_scores(predictions, records)
    edges = [0, *buckets]
    names = [f"<{buckets[0]}"] + [f"{lo}-{hi}" for lo, hi in zip(buckets, buckets[1:])] + [f">={buckets[-1]}"]
    members: dict[str, list[str]] = {name: [] for name in names}
    for record in answerable:
        position = token_starts[record.id]
        bucket = sum(position >= edge for edge in edges) - 1
        members[names[bucket]].append(record.id)
    result = {}
    for name, ids in members.items():
        if ids:
            averages = _averages(scores, ids, "")
            result[name] = {"exact_match": averages["exact_match"], "f1": averages["f1"], "count": len(ids)}
        else:
            result[name] = {"exact_match": None, "f1": None, "count": 0}
    return result


def answer_token_start(tokenizer, record: QARecord) -> int:
    """The index of the token where the record's first answer starts, in the context tokenized
    alone with ``tokenizer`` (a fast tokenizer: offsets are needed), special tokens left out."""
    if not record.answerable:
        raise ValueError(f"{record.source}: question {record.id!r} has no answer, so no answer position")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("answer_token_start needs a fast tokenizer (character offsets); load it with use_fast=True")
    offsets = tokenizer(record.context, add_special_tokens=False, return_offsets_mapping=True,
                        verbose=False)["offset_mapping"]
    start = record.answers[0].start
    for index, (_, end) in enumerate(offsets):
        if end > start:  # the first token reaching into the answer (it may begin in the whitespace before)
            return index
    raise ValueError(f"{record.source}: the answer of {record.id!r} starts at character {start}, after every token "
                     f"of the context (the tokenizer dropped its characters)")


def _check_predictions(predictions: Mapping[str, str], records: Sequence[QARecord]) -> None:
    if not records:
        raise ValueError("no questions to score: give at least one record")
    if len({r.id for r in records}) != len(records):
        repeated = sorted(i for i, n in Counter(r.id for r in records).items() if n > 1)
        raise ValueError(f"question ids must be unique, repeated: {', '.join(repeated[:3])}")
    missing = [r.id for r in records if r.id not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} of {len(records)} questions ({', '.join(missing[:3])}"
                         f"{'...' if len(missing) > 3 else ''}); predict \"\" for a question left unanswered")
    extra = len(set(predictions) - {r.id for r in records})
    if extra:
        logger.warning("%d predictions are for questions that are not in the records; they are not scored", extra)


def _probabilities(given: Mapping[str, float] | None, records: Sequence[QARecord]) -> dict[str, float]:
    if given is None:
        return {r.id: 0.0 for r in records}
    missing = [r.id for r in records if r.id not in given]
    if missing:
        raise ValueError(f"no no-answer probability for {len(missing)} questions ({', '.join(missing[:3])}...); "
                         f"give one for every question, or none at all")
    return {r.id: float(given[r.id]) for r in records}


def _averages(scores: Mapping[str, tuple[float, float]], ids: Sequence[str], prefix: str) -> dict:
    exact_name = "exact" if prefix else "exact_match"  # HasAns_exact as in the v2.0 script
    return {f"{prefix}{exact_name}": 100.0 * sum(scores[i][0] for i in ids) / len(ids),
            f"{prefix}f1": 100.0 * sum(scores[i][1] for i in ids) / len(ids),
            f"{prefix}total": len(ids)}
