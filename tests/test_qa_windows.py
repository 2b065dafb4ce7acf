"""QA windows: the same windows as transformers 4.57's question-answering pipeline (tiny BERT and
RoBERTa checkpoints, contexts over several windows), the question's global attention mask in both
pair layouts, clear errors, default lengths, and SQuAD-style training labels."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import transformers

import longdoc.assets
from longdoc.data.qa import QAAnswer, QARecord
from longdoc.data.qa_windows import (batch_inputs, default_doc_stride, default_max_length, question_answer_windows,
                                     training_features)
from longdoc.data.documents import DataError
from longdoc.models.longformer import LongformerConfig
from qa_pipeline_oracle_runs import QUESTIONS, cases, checkpoint, contexts, oracle_run
from qa_tiny_checkpoints import paragraph


def tokenizer_of(kind: str, **options):
    return transformers.AutoTokenizer.from_pretrained(checkpoint(kind), **options)


@pytest.mark.parametrize("kind,max_length,doc_stride", cases())
def test_windows_are_the_pipelines(kind, max_length, doc_stride):
    oracle = oracle_run(kind, max_length, doc_stride)
    tokenizer = tokenizer_of(kind)
    windows = question_answer_windows(tokenizer, QUESTIONS, contexts(), max_length, doc_stride)
    theirs = [(example, w) for example, example_windows in enumerate(oracle["windows"]) for w in example_windows]
    assert len(windows) == len(theirs)
    assert max(len(w) for w in oracle["windows"]) > 3  # contexts really span several windows
    for index, (ours, (example, expected)) in enumerate(zip(windows, theirs)):
        where = f"window {index} (pair {example})"
        assert ours.example == example, where
        assert ours.input_ids == expected["input_ids"], where
        assert ours.attention_mask == expected["attention_mask"], where
        assert ours.p_mask == expected["p_mask"], where
        assert [list(o) for o in ours.offset_mapping] == expected["offsets"], where
        if "token_type_ids" in tokenizer.model_input_names:
            assert ours.token_type_ids == expected["token_type_ids"], where
        else:
            assert ours.token_type_ids is None


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_windows_cover_the_context_with_the_given_overlap(kind):
    tokenizer = tokenizer_of(kind)
    text = contexts()[2]
    context_tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for max_length, stride in [(40, 5), (57, 13), (64, 30)]:
        windows = question_answer_windows(tokenizer, [QUESTIONS[0]], [text], max_length, stride)
        seen = [[tuple(w.offset_mapping[i]) for i, word in enumerate(w.word_ids) if word >= 0] for w in windows]
        assert all(len(w) <= max_length for w in windows)
        assert all(len(w) == max_length for w in windows[:-1])  # full windows until the context runs out
        for before, after in zip(seen, seen[1:]):
            assert before[-stride:] == after[:stride]  # consecutive windows share exactly `stride` tokens
        joined = seen[0] + [token for window in seen[1:] for token in window[stride:]]
        assert joined == [tuple(o) for o in context_tokens]


def _first(ids, token_id):
    return ids.index(token_id)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_global_attention_is_on_the_question_and_its_opening_token(kind):
    tokenizer = tokenizer_of(kind)
    windows = question_answer_windows(tokenizer, QUESTIONS, contexts(), 64, 10)
    for window in windows:
        ids = window.input_ids
        question_end = _first(ids, tokenizer.sep_token_id)  # [CLS] q [SEP] ... and <s> q </s></s> ... alike
        assert window.global_attention_mask == [1] * question_end + [0] * (len(ids) - question_end)
        assert ids[0] == tokenizer.cls_token_id
        question = tokenizer(QUESTIONS[window.example], add_special_tokens=False)["input_ids"]
        assert ids[1:question_end] == question


def test_context_first_layout_masks_everything_but_context_and_cls():
    """A tokenizer that pads on the left puts the context first; the question is global, the
    question and separators cannot answer."""
    tokenizer = tokenizer_of("bert", padding_side="left")
    windows = question_answer_windows(tokenizer, QUESTIONS[:2], contexts()[:2], 48, 8)
    for window in windows:
        question = tokenizer(QUESTIONS[window.example], add_special_tokens=False)["input_ids"]
        first_sep = _first(window.input_ids, tokenizer.sep_token_id)
        assert window.input_ids[first_sep + 1:-1] == question  # [CLS] c [SEP] q [SEP]
        expected_global = [int(first_sep < i < len(window) - 1) for i in range(len(window))]
        assert window.global_attention_mask == expected_global
        expected_p_mask = [0] + [0] * (first_sep - 1) + [1] * (len(window) - first_sep)
        assert window.p_mask == expected_p_mask
        assert all((word >= 0) == (0 < i < first_sep) for i, word in enumerate(window.word_ids))


def test_batch_inputs_pads_every_field():
    tokenizer = tokenizer_of("bert")
    windows = question_answer_windows(tokenizer, QUESTIONS, contexts(), 64, 19)
    lengths = {len(w) for w in windows}
    assert len(lengths) > 1  # the last window of each context is shorter
    names = ("input_ids", "attention_mask", "token_type_ids", "global_attention_mask", "p_mask")
    batch = batch_inputs(windows, tokenizer.pad_token_id, names)
    assert batch["input_ids"].shape == (len(windows), max(lengths))
    for row, window in enumerate(windows):
        n = len(window)
        for name in names:
            assert batch[name][row, :n].tolist() == list(getattr(window, name))
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert (batch["attention_mask"][row, n:] == 0).all()
    with pytest.raises(ValueError, match="start_position"):
        batch_inputs(windows, tokenizer.pad_token_id, ["start_position"])


def test_errors_say_what_was_wrong_and_how_to_fix_it():
    tokenizer = tokenizer_of("bert")
    context = contexts()[0]
    with pytest.raises(ValueError, match=r"doc_stride \(64\) must be smaller than the window \(max_length 64\)"):
        question_answer_windows(tokenizer, ["why?"], [context], 64, 64)
    long_question = " ".join(["the"] * 70)
    with pytest.raises(ValueError, match=r"question 1 is 70 tokens long.*window of 64 tokens.*shorten the question "
                                         r"or use a longer window \(max_length > 73\)"):
        question_answer_windows(tokenizer, ["why?", long_question], [context, context], 64, 8)
    with pytest.raises(ValueError, match=r"doc_stride \(40\) must be smaller than the 31 context tokens.*lower "
                                         r"doc_stride below 31"):
        question_answer_windows(tokenizer, [" ".join(["the"] * 30)], [context], 64, 40)
    slow = transformers.BertTokenizerLegacy(str(longdoc.assets.packaged_minilm() / "vocab.txt"))
    with pytest.raises(ValueError, match="slow.*only fast tokenizers give.*load a fast one"):
        question_answer_windows(slow, ["why?"], [context], 64, 8)
    with pytest.raises(ValueError, match="2 questions but 1 contexts"):
        question_answer_windows(tokenizer, ["why?", "how?"], [context], 64, 8)
    with pytest.raises(ValueError, match="question 0 is empty"):
        question_answer_windows(tokenizer, ["  "], [context], 64, 8)


def test_default_stride_fits_the_longest_question():
    tokenizer = tokenizer_of("bert")
    question = " ".join(["the"] * 50)  # 50 tokens + 3 special: 11 context tokens in 64
    windows = question_answer_windows(tokenizer, [question], [contexts()[0]], 64)
    context_counts = [sum(word >= 0 for word in w.word_ids) for w in windows]
    assert context_counts[0] == 11 and len(windows) > 3
    assert default_doc_stride(64) == 16 and default_doc_stride(4096) == 512 and default_doc_stride(8192) == 512


def test_default_max_length_is_the_models_whole_length():
    bert = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm())
    unbounded = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm(), model_max_length=int(1e30))
    assert default_max_length(transformers.BertConfig(max_position_embeddings=512), unbounded) == 512
    assert default_max_length(transformers.RobertaConfig(max_position_embeddings=514, pad_token_id=1), unbounded) == 512
    assert default_max_length(transformers.LongformerConfig(max_position_embeddings=4098, pad_token_id=1),
                              unbounded) == 4096
    assert default_max_length(LongformerConfig(max_position_embeddings=4098, pad_token_id=1), unbounded) == 4096
    assert default_max_length(LongformerConfig(max_position_embeddings=4097, pad_token_id=0), unbounded) == 4096
    assert bert.model_max_length == 512
    assert default_max_length(transformers.BertConfig(max_position_embeddings=2048), bert) == 512  # tokenizer's cap
    with pytest.raises(ValueError, match="pass max_length"):
        default_max_length(object(), unbounded)


def _records(rng: random.Random) -> list[QARecord]:
    records = []
    for index in range(6):
        context = paragraph(rng, 8 + 3 * index)
        words = [(m.start(), m.group()) for m in re.finditer(r"[A-Za-z]+(?: [A-Za-z]+){0,2}", context)]
        start, text = words[rng.randrange(len(words))]
        answers = (QAAnswer(text, start),) if index != 4 else ()  # record 4 is unanswerable
        records.append(QARecord(f"q{index}", QUESTIONS[index % len(QUESTIONS)], context, answers, f"mem:{index}"))
    return records


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_training_labels_decode_back_to_the_answer(kind):
    tokenizer = tokenizer_of(kind)
    records = _records(random.Random(3))
    features = training_features(tokenizer, records, 64, 24)
    assert len(features) > 2 * len(records)  # long contexts: several windows per record
    for record_index, record in enumerate(records):
        windows = [f for f in features if f.example == record_index]
        labelled = [w for w in windows if w.start_position != 0]
        if not record.answerable:
            assert not labelled and all(w.end_position == 0 for w in windows)
            continue
        answer = record.answers[0]
        holding = [w for w in windows if _context_span(w)[0] <= answer.start and answer.end <= _context_span(w)[1]]
        assert holding and labelled == holding  # labelled exactly where the whole answer is inside
        for w in labelled:
            assert w.p_mask[w.start_position] == 0 and w.p_mask[w.end_position] == 0
            begin, end = w.offset_mapping[w.start_position][0], w.offset_mapping[w.end_position][1]
            assert record.context[begin:end] == answer.text
        for w in windows:
            if w not in labelled:
                assert (w.start_position, w.end_position) == (0, 0)


def _context_span(window) -> tuple[int, int]:
    context = [i for i, word in enumerate(window.word_ids) if word >= 0]
    return window.offset_mapping[context[0]][0], window.offset_mapping[context[-1]][1]


def test_training_labels_cover_an_answer_inside_a_word():
    tokenizer = tokenizer_of("bert")
    context = "The archive was released with a checksumming tool and a parser."
    start = context.index("checksum")
    record = QARecord("q", "what tool?", context, (QAAnswer("checksum", start),), "mem:1")
    (window,) = training_features(tokenizer, [record], 64, 8)
    begin, end = window.offset_mapping[window.start_position][0], window.offset_mapping[window.end_position][1]
    assert begin <= start and start + len("checksum") <= end and "checksum" in context[begin:end]
    assert np.all(np.asarray(window.p_mask)[[window.start_position, window.end_position]] == 0)


def test_training_features_reject_an_answer_that_is_not_where_it_says():
    tokenizer = tokenizer_of("bert")
    record = QARecord("q7", "what?", "The parser reads the header.", (QAAnswer("header", 3),), "train.jsonl:7")
    with pytest.raises(DataError, match=r"train.jsonl:7: answer 'header' does not start at character 3 of its "
                                        r"context \(found ' parse'\); fix its answer_start"):
        training_features(tokenizer, [record], 64, 8)
