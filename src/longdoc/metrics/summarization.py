"""Summarization metrics and baselines: ROUGE, a sentence splitter and the lead baseline.

    from longdoc.metrics.summarization import lead_baseline, rouge_scores
    predictions = [lead_baseline(r["text"]) for r in records]
    rouge_scores(predictions, [r["summary"] for r in records])
    # {"rouge1": 0.41, "rouge2": 0.22, "rougeL": 0.39, "rougeLsum": 0.39}  (F-measures in 0..1)

ROUGE is computed by the reference implementation, Google's ``rouge-score`` package (the one
behind Hugging Face ``evaluate``'s "rouge"), with its default tokenizer (lower-cased, runs of
``[a-z0-9]`` only) and the Porter stemmer (``use_stemmer=True``). Each score is the F-measure of
one prediction against its reference, averaged over the pairs (a plain mean: ``evaluate``'s
bootstrap "mid" estimates the same mean, but with random resampling).

``rougeLsum`` is the summary-level LCS of ``rouge-score``: sentences are taken to be separated by
newlines. As in the usual recipe (``"\\n".join(nltk.sent_tokenize(text))``), both texts are first
rewritten one sentence per line by :func:`split_sentences`, longdoc's rule-based splitter (nltk's
punkt model would have to be downloaded). Existing line breaks are kept as sentence boundaries,
as they are in that recipe (rouge-score splits on every newline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..data.sentences import split_sentences as sentence_spans

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` as strings, whitespace inside each normalised: longdoc's splitter
    (:func:`longdoc.data.sentences.split_sentences`) with every line break a boundary, as
    rouge-score reads one sentence per line. A period ends a sentence only before a capital
    letter, a digit, an opening quote or bracket, and not after an abbreviation (``e.g.``,
    ``cf.``...) or an initial.
    """
    return [" ".join(text[start:end].split()) for start, end in sentence_spans(text, line_breaks=True)]


def _one_sentence_per_line(text: str) -> str:
    return "\n".join(split_sentences(text))


def require_rouge_score():
    """rouge-score's (rouge_scorer, scoring) modules, or an ImportError naming the extra that installs it."""
    try:
        from rouge_score import rouge_scorer, scoring
    except ImportError as error:
        raise ImportError('ROUGE needs the rouge-score package: pip install "longdoc[summarization]"') from error
    return rouge_scorer, scoring


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measures (0..1) of ``predictions`` against ``references``, pairwise.

    Keys: ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum`` (see the module docstring).
    """
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(
            f"rouge_scores needs one reference per prediction: got {len(predictions)} predictions and "
            f"{len(references)} references"
        )
    if not predictions:
        raise ValueError("rouge_scores needs at least one prediction/reference pair: both lists are empty")
    for name, texts in (("predictions", predictions), ("references", references)):
        for i, item in enumerate(texts):
            if not isinstance(item, str):
                raise TypeError(f"{name}[{i}] is {type(item).__name__}, not str")

    rouge_scorer, scoring = require_rouge_score()
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    aggregate: dict[str, float] = {key: 0.0 for key in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references):
        # rouge-score's signature is score(target, prediction)
        scores: dict[str, scoring.Score] = scorer.score(
            _one_sentence_per_line(reference), _one_sentence_per_line(prediction)
        )
        for key in ROUGE_TYPES:
            aggregate[key] += scores[key].fmeasure
    return {key: total / len(predictions) for key, total in aggregate.items()}


def _is_heading(line: str) -> bool:
    """An all-capitals title line: ``DESCRIPTION``, ``RETURN VALUE``, ``C LIBRARY/KERNEL DIFFERENCES``."""
    line = line.strip()
    return bool(line) and len(line.split()) <= 6 and any(c.isalpha() for c in line) and line == line.upper() \
        and not re.search(r"[.!?;:,(){}<>=*#\"]", line)


def lead_baseline(text: str, section: str | None = "DESCRIPTION") -> str:
    """The lead-1 summary: the first sentence of the text, leading title lines skipped.

    When ``section`` (default ``DESCRIPTION``) is the title of a line of ``text`` (alone on its
    line, any case), the lead is taken from what follows its first occurrence: for a man page that
    is the first sentence of DESCRIPTION, not the SYNOPSIS code. Otherwise (or with
    ``section=None``) it starts at the top of the text. All-capitals title lines at the start
    (``SYNOPSIS``, ``DESCRIPTION``...) are skipped; the result is the first sentence of
    :func:`split_sentences` of what remains, or ``""`` for a text without any.
    """
    lines = text.splitlines()
    if section is not None:
        for i, line in enumerate(lines):
            if line.strip().upper() == section.strip().upper():
                lines = lines[i + 1 :]
                break
    while lines and (not lines[0].strip() or _is_heading(lines[0])):
        lines = lines[1:]
    sentences = split_sentences("\n".join(lines[:1]))
    return sentences[0] if sentences else ""
