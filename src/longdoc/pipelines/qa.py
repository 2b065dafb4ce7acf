"""Extractive question answering: a question and a long context in, the answer's text and characters out.

    from longdoc import QuestionAnswerer
    qa = QuestionAnswerer.from_pretrained("my-qa-model")       # the folder `longdoc train` wrote
    qa(question="Why is Python slow?", context=page)           # {"answer", "score", "start", "end"}
    qa(question=[q1, q2], context=[page1, page2], top_k=3)     # one result per pair, windows batched

It answers as transformers' question-answering pipeline (4.57, the last release that had one) does:
the same windows (`data/qa_windows.py`), the same span decoding and scores (`data/qa_spans.py`),
the same call forms and results (a dict for one answer, a list for several). Differences: the
window is the model's whole length unless `max_length` (`max_seq_len`) is given, the question is
attended globally (Longformer's global attention, LSG's question_global), windows of all pairs run
in length-sorted padded batches, and a HAT reads each window as segments that all carry the
question (`data/hat_qa_windows.py`). A model trained by longdoc keeps the max_length, doc_stride
and max_answer_length it was trained with in its config; they are the defaults here.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.hat_qa import batch_hat_qa
from ..data.hat_qa_windows import HATWindow, hat_windows, view_logits
from ..data.qa import QARecord, read_qa
from ..data.qa_defaults import CONFIG_FIELD, DEFAULT_MAX_ANSWER_LENGTH
from ..data.qa_spans import MASKED_LOGIT, best_answers
from ..data.qa_windows import batch_inputs, default_max_length, question_answer_windows
from ..errors import DataError
from ..families import head_of_config, load_model, read_model_config
from ..metrics.qa import answer_token_start, metrics_by_answer_position, squad_metrics
from ..runtime import DEFAULT_BATCH_TOKENS, autocast_context, bf16_autocast_default, length_sorted_batches
from .base import Pipeline

logger = logging.getLogger(__name__)

HAT_MODEL_TYPE = "hierarchical-transformer"
OPTION_NAMES = ("max_length", "doc_stride", "max_answer_len", "top_k", "handle_impossible_answer", "align_to_words")
# transformers' names of the same options; max_question_len is accepted and has no effect (a question is never cut)
OPTION_ALIASES = {"max_seq_len": "max_length", "max_answer_length": "max_answer_len"}


# a window shorter than this share of the longest in its batch (the last one of a long context) runs in a batch of
# its own: padding it to a full window would cost more than the extra call (bench_qa: 8192 tokens to read 4646)
WINDOW_FILL = 0.75


class QuestionAnswerer(Pipeline):
    """A saved question-answering model (Longformer, LSG or HAT) with its tokenizer."""

    heads = ("spans",)
    what = "question answerer"
    train_hint = "longdoc train --task question-answering"

    def __init__(self, model, tokenizer, family=None, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                 bf16: bool | None = None, **options):
        """`options` (each also per call): max_length (max_seq_len), doc_stride, max_answer_len
        (max_answer_length), top_k, handle_impossible_answer, align_to_words."""
        super().__init__(model, tokenizer, family)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{type(tokenizer).__name__} is a slow (Python) tokenizer: question answering needs "
                             f"character offsets, which only fast tokenizers give; save the model with a fast "
                             f"tokenizer (tokenizer.json)")
        self.batch_tokens = batch_tokens
        self.bf16 = bf16
        saved = dict(getattr(model.config, CONFIG_FIELD, None) or {})
        self.defaults = {"max_length": saved.get("max_length") or self.model_length(),
                         "doc_stride": saved.get("doc_stride"),
                         "max_answer_len": saved.get("max_answer_length") or DEFAULT_MAX_ANSWER_LENGTH,
                         "top_k": 1, "handle_impossible_answer": bool(saved.get("handle_impossible_answer")),
                         "align_to_words": True}
        self.defaults = self.settings(**options)

    @property
    def is_hat(self) -> bool:
        return self.model.config.model_type == HAT_MODEL_TYPE

    def model_length(self) -> int:
        """Tokens of the longest window the model reads (HAT: all its segments)."""
        config = self.model.config
        if self.is_hat:
            return config.max_sentences * config.max_sentence_size
        return default_max_length(config, self.tokenizer)

    @classmethod
    def load(cls, model_dir: str, dtype=None):
        """The QA model in `model_dir`; a folder of another task's model says which task made it."""
        fields = read_model_config(model_dir)
        head = head_of_config(fields)
        if head != "spans":
            other = other_pipeline(head)
            if other is not None:
                raise DataError(f"{model_dir} holds a {other.what}, trained with `{other.train_hint}`, not a question "
                                f"answerer: train one with `{cls.train_hint}`")
            raise DataError(f"{model_dir} holds a {fields.get('model_type')!r} model without a question-answering head: "
                            f"train one from it with `{cls.train_hint} --model {model_dir}`")
        return load_model(model_dir, cls.heads, cls.what, cls.train_hint, dtype=dtype)

    # -- settings --------------------------------------------------------------------------------

    def settings(self, **options) -> dict:
        """The instance's settings overridden by the options given (transformers' names accepted)."""
        options = dict(options)
        options.pop("max_question_len", None)
        for alias, name in OPTION_ALIASES.items():
            if alias in options:
                value = options.pop(alias)
                if options.get(name) is not None and value is not None and options[name] != value:
                    raise ValueError(f"{alias}={value} and {name}={options[name]} disagree: give one of them")
                options[name] = value if options.get(name) is None else options[name]
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"unknown question-answering options {unknown}; the options are {', '.join(OPTION_NAMES)} "
                            f"(or transformers' max_seq_len, max_answer_len)")
        settings = {**self.defaults, **{k: v for k, v in options.items() if v is not None}}
        longest = self.model_length()
        if settings["max_length"] > longest:
            raise ValueError(f"max_length {settings['max_length']} is longer than the model reads ({longest} tokens): "
                             f"give at most {longest}")
        if self.is_hat and settings["max_length"] < self.model.config.max_sentence_size:
            raise ValueError(f"max_length {settings['max_length']} is shorter than one HAT segment "
                             f"({self.model.config.max_sentence_size} tokens): give a multiple of it")
        stride = settings["doc_stride"]
        if stride is not None and not 0 <= stride < settings["max_length"]:
            raise ValueError(f"doc_stride ({stride}) must be at least 0 and smaller than the window (max_length "
                             f"{settings['max_length']}): it is the overlap between consecutive windows")
        for name in ("max_answer_len", "top_k"):
            if settings[name] < 1:
                raise ValueError(f"{name} must be at least 1, got {settings[name]}")
        return settings

    # -- the transformers-style call -------------------------------------------------------------

    def __call__(self, *args, question=None, context=None, **options):
        """Answers in transformers' forms: `question=` and `context=` (strings, or lists: one context for
        every question, or one per question), a {"question", "context"} dict or a list of them, or
        (question, context) positionally. One pair gives its result, several a list of results; a
        result is a dict, or a list of dicts when more than one answer is kept (top_k > 1)."""
        questions, contexts = pairs_of(args, question, context)
        results = [answers[0] if len(answers) == 1 else answers
                   for answers in self.answer(questions, contexts, **options)]
        return results[0] if len(results) == 1 else results

    def predict(self, inputs, **options) -> list[list[dict]]:
        """The answers (a list, best first) of each {"question", "context"} of `inputs`."""
        questions, contexts = pairs_of((inputs,), None, None)
        return self.answer(questions, contexts, **options)

    def answer(self, questions: Sequence[str], contexts: Sequence[str], progress: str | None = None,
               **options) -> list[list[dict]]:
        """For each (question, context) pair, up to top_k answers {answer, score, start, end}, best first,
        with context[start:end] == answer ("" at 0:0 when handle_impossible_answer finds no answer best)."""
        settings = self.settings(**options)
        windows = self.preprocess(list(zip(questions, contexts)), **settings)
        views, starts, ends = self.forward(windows, progress=progress)
        return self.postprocess((views, starts, ends), list(contexts), **settings)

    # -- the three steps -----------------------------------------------------------------------

    def preprocess(self, pairs: list[tuple[str, str]], max_length: int = None, doc_stride: int | None = None,
                   **settings) -> list:
        """The windows of every (question, context) pair (HAT windows for a HAT)."""
        questions, contexts = [q for q, _ in pairs], [c for _, c in pairs]
        max_length = max_length or self.defaults["max_length"]
        if self.is_hat:
            size = self.model.config.max_sentence_size
            return hat_windows(self.tokenizer, questions, contexts, size, max(1, max_length // size), doc_stride)
        return question_answer_windows(self.tokenizer, questions, contexts, max_length, doc_stride)

    @torch.inference_mode()
    def forward(self, windows: list, progress: str | None = None, **settings):
        """(windows to decode, start logit rows, end logit rows): a Longformer/LSG window as it is, a
        HAT window as its view (CLS and context tokens) with the logits of those tokens."""
        device = self.model.device
        bf16 = bf16_autocast_default(device) if self.bf16 is None else self.bf16
        starts, ends = [None] * len(windows), [None] * len(windows)
        batches = length_sorted_batches([len(w) for w in windows], self.batch_tokens, min_fill=WINDOW_FILL)
        with autocast_context(device, bf16):
            for batch in tqdm(batches, desc=progress, unit="batch", disable=progress is None):
                inputs = model_inputs(self.model, self.tokenizer, [windows[i] for i in batch])
                out = self.model(**{k: v.to(device) for k, v in inputs.items()})
                start_logits, end_logits = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
                for row, index in enumerate(batch):
                    starts[index], ends[index] = start_logits[row, :len(windows[index])], end_logits[row, :len(windows[index])]
        return decodable(windows, starts, ends)

    def postprocess(self, outputs, contexts: list[str], top_k: int = 1, max_answer_len: int = 15,
                    handle_impossible_answer: bool = False, align_to_words: bool = True, **settings) -> list[list[dict]]:
        views, starts, ends = outputs
        return best_answers(starts, ends, views, contexts, top_k=top_k, max_answer_len=max_answer_len,
                            handle_impossible_answer=handle_impossible_answer, align_to_words=align_to_words)

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, path: str | os.PathLike, progress: bool = True, **options) -> dict:
        """SQuAD metrics on a QA file (SQuAD JSON or JSON lines): exact_match and f1 (0-100); with
        unanswerable questions HasAns_* / NoAns_* and the best no-answer threshold; EM/F1 by where the
        answer starts (tokens); the settings used and the speed."""
        records = read_qa(path)
        settings = self.settings(**options)
        start = time.perf_counter()
        windows = self.preprocess([(r.question, r.context) for r in records], **settings)
        views, starts, ends = self.forward(windows, progress="answering" if progress else None)
        seconds = time.perf_counter() - start
        metrics = score_records(records, views, starts, ends, settings["max_answer_len"], self.tokenizer,
                                settings["align_to_words"])
        tokens = sum(len(w) for w in windows)
        metrics.update(max_length=settings["max_length"], doc_stride=settings["doc_stride"],
                       max_answer_length=settings["max_answer_len"], windows=len(windows), seconds=seconds,
                       questions_per_second=len(records) / seconds if seconds else None,
                       tokens_per_second=tokens / seconds if seconds else None)
        return metrics


# --- shared with training (tasks/qa.py) --------------------------------------------------------------


def other_pipeline(head: str | None):
    """The pipeline of the models of another head kind (None: no pipeline reads them)."""
    from .classification import DocumentClassifier
    from .sentences import SentenceClassifier
    from .summarization import Summarizer

    return {"classification": DocumentClassifier, "sentences": SentenceClassifier, "seq2seq": Summarizer}.get(head)


def pairs_of(args: tuple, question, context) -> tuple[list[str], list[str]]:
    """(questions, contexts) of a transformers-style call."""
    if args and (question is not None or context is not None):
        raise ValueError("give the inputs either positionally or as question= and context=, not both")
    if len(args) == 2 and all(isinstance(a, str) for a in args):
        question, context = args
    elif args:
        items = args[0] if len(args) == 1 else list(args)
        items = [items] if isinstance(items, dict) else list(items)
        for index, item in enumerate(items):
            if not isinstance(item, dict) or "question" not in item or "context" not in item:
                raise ValueError(f"input {index} is not a {{'question': ..., 'context': ...}} dict")
        return [item["question"] for item in items], [item["context"] for item in items]
    if question is None or context is None:
        raise ValueError("give question= and context= (strings, or lists of them)")
    if isinstance(question, str) and isinstance(context, str):
        return [question], [context]
    if not isinstance(question, str) and isinstance(context, str):
        return list(question), [context] * len(question)
    if isinstance(question, str):
        raise ValueError("one question for several contexts: give a list of questions, one per context")
    question, context = list(question), list(context)
    if len(question) != len(context):
        raise ValueError(f"{len(question)} questions but {len(context)} contexts: give one context per question, "
                         f"or a single context for all")
    return question, context


def model_inputs(model, tokenizer, windows: list) -> dict[str, torch.Tensor]:
    """The padded batch a QA model of any family reads for these windows (no labels)."""
    if isinstance(windows[0], HATWindow):
        return batch_hat_qa([w.inputs for w in windows], tokenizer.pad_token_id)
    names = input_names(model, windows[0])
    batch = batch_inputs(windows, tokenizer.pad_token_id, [QUESTION_FIELD.get(n, n) for n in names])
    return {name: torch.from_numpy(batch[QUESTION_FIELD.get(name, name)]) for name in names}


QUESTION_FIELD = {"question_mask": "global_attention_mask"}  # LSG's question_mask is the window's question mask


def input_names(model, window) -> list[str]:
    """What a sequence model reads of a window: ids and mask, token types where the tokenizer gives them,
    and the question's mask as Longformer's global attention or LSG's question_mask."""
    names = ["input_ids", "attention_mask"]
    if window.token_type_ids is not None:
        names.append("token_type_ids")
    config = model.config
    if config.model_type == "longformer":
        names.append("global_attention_mask")
    elif getattr(config, "question_global", None):
        names.append("question_mask")
    return names


def decodable(windows: list, starts: list, ends: list) -> tuple[list, list, list]:
    """Windows and logit rows as best_answers reads them: HAT windows become their views."""
    if windows and isinstance(windows[0], HATWindow):
        rows = [view_logits(w, s, e) for w, s, e in zip(windows, starts, ends)]
        return [w.view for w in windows], [r[0] for r in rows], [r[1] for r in rows]
    return windows, starts, ends


def no_answer_scores(starts: Sequence, ends: Sequence, windows: Sequence, count: int) -> list[float]:
    """Per pair, the score best_answers gives "no answer": the least, over its windows, of the CLS
    start x end probability (softmax over the tokens that may answer)."""
    scores = [1.0] * count
    for window, start, end in zip(windows, starts, ends):
        blocked = (np.asarray(window.p_mask) != 0) | (np.asarray(window.attention_mask) == 0)
        first = []
        for row in (start, end):
            row = np.where(blocked, np.float32(MASKED_LOGIT), np.asarray(row, dtype=np.float32)[:len(window)])
            row = np.exp(row - row.max())
            first.append(row[0] / row.sum())
        scores[window.example] = min(scores[window.example], float(first[0] * first[1]))
    return scores


def score_records(records: Sequence[QARecord], windows: Sequence, starts: Sequence, ends: Sequence,
                  max_answer_len: int, tokenizer, align_to_words: bool = True) -> dict:
    """SQuAD metrics of decoded windows (one or more per record, `window.example` its index): the best
    span of each record, "" where "no answer" scores higher (unanswerable questions in the set), the
    best threshold over no-answer scores, and scores by answer position."""
    contexts = [r.context for r in records]
    best = best_answers(starts, ends, windows, contexts, top_k=1, max_answer_len=max_answer_len,
                        align_to_words=align_to_words)
    spans = {r.id: (answers[0]["answer"], answers[0]["score"]) if answers else ("", 0.0)
             for r, answers in zip(records, best)}
    if all(r.answerable for r in records):
        predictions = {i: text for i, (text, _) in spans.items()}
        metrics = squad_metrics(predictions, records)
    else:
        null = dict(zip((r.id for r in records), no_answer_scores(starts, ends, windows, len(records))))
        # the pipeline's choice with handle_impossible_answer: "" when no answer scores higher than the best span
        predictions = {i: "" if null[i] > score else text for i, (text, score) in spans.items()}
        metrics = squad_metrics(predictions, records)
        thresholds = squad_metrics({i: text for i, (text, _) in spans.items()}, records, null)
        metrics.update({k: v for k, v in thresholds.items() if k.startswith("best_")})
    starts_by_id = {r.id: answer_token_start(tokenizer, r) for r in records if r.answerable}
    if starts_by_id:
        metrics["by_answer_position"] = metrics_by_answer_position(predictions, records, starts_by_id)
    return metrics

