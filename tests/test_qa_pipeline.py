"""QuestionAnswerer: answers as transformers 4.57's question-answering pipeline gives them (the .venv-qa
oracle, a Longformer with a RoBERTa-style tokenizer over contexts longer than the window), the same
answers batched as one at a time for every family, transformers' call forms and
`longdoc.pipeline(...)`, HAT windows over long contexts, and the errors."""

import json
import random
import subprocess

import numpy as np
import pytest
import torch
import transformers

import longdoc
from longdoc.convert import convert
from longdoc.data.hat_qa import best_answer_span
from longdoc.data.hat_qa_windows import hat_windows
from longdoc.data.qa_spans import best_answers
from longdoc.data.qa_windows import QAWindow
from longdoc.families import get_family
from longdoc.pipelines.qa import QuestionAnswerer, no_answer_scores
from qa_pipeline_oracle_runs import ORACLE_PYTHON, ORACLE_SCRIPT, QUESTIONS, contexts, require_oracle
from qa_tiny_checkpoints import tiny_roberta_qa
from qa_toy_data import QUESTION, random_qa_model, toy_context
from tiny_checkpoints import bert_tokenizer


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")  # the oracle runs in fp32; bf16 hardware would round differently


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """family -> folder of a random QA model reading 128-token windows (HAT: 4 segments of 32)."""
    return {family: random_qa_model(family, tmp_path_factory.mktemp(family)) for family in ("longformer", "lsg", "hat")}


def pairs(count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    contexts_ = [toy_context(rng, (20 + 90 * i, 40 + 90 * i))[0] for i in range(count)]  # 1 to 3+ windows
    return [QUESTION if i % 2 else "w1 w2" for i in range(count)], contexts_


def as_list(result):
    return [result] if isinstance(result, dict) else list(result)


def assert_same(ours, theirs, atol=1e-6):
    """The same answers at the same characters, scores within atol (a padded batch sums in another order)."""
    ours, theirs = as_list(ours), as_list(theirs)
    assert [(a["answer"], a["start"], a["end"]) for a in ours] == [(a["answer"], a["start"], a["end"]) for a in theirs]
    np.testing.assert_allclose([a["score"] for a in ours], [a["score"] for a in theirs], atol=atol, rtol=0)


# --- parity with transformers 4.57's pipeline -------------------------------------------------------------


def test_answers_equal_transformers_457_pipeline_on_a_longformer(tmp_path):
    """A Longformer QA checkpoint (converted from a RoBERTa with a byte-level BPE tokenizer; sliding window 32
    inside 96-token windows, stride 40): every answer, offset and score as the 4.57 pipeline's, which
    places the question's global attention itself (three separators) while ours comes from the pair."""
    require_oracle()
    source = tiny_roberta_qa(tmp_path / "roberta")
    convert(source, tmp_path / "longformer", to="longformer", max_length=256, window=32)
    model, tokenizer = get_family("longformer").build("spans", str(tmp_path / "longformer"),
                                                      {"work_dir": str(tmp_path)})
    model.save_pretrained(tmp_path / "qa")
    tokenizer.save_pretrained(tmp_path / "qa")
    settings = [dict(top_k=1, max_answer_len=30, handle_impossible_answer=False, align_to_words=True),
                dict(top_k=3, max_answer_len=30, handle_impossible_answer=True, align_to_words=True),
                dict(top_k=3, max_answer_len=2, handle_impossible_answer=False, align_to_words=False)]
    spec = {"model": str(tmp_path / "qa"), "questions": QUESTIONS, "contexts": contexts(), "max_seq_len": 96,
            "doc_stride": 40, "settings": settings}
    result = subprocess.run([str(ORACLE_PYTHON), str(ORACLE_SCRIPT)], input=json.dumps(spec), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    oracle = json.loads(result.stdout)
    assert oracle["transformers"].startswith("4.57.")
    assert all(len(windows) > 1 for windows in oracle["windows"][:3])  # contexts longer than the window
    qa = QuestionAnswerer.from_pretrained(tmp_path / "qa")
    for setting, expected in zip(settings, oracle["answers"]):
        ours = qa(question=QUESTIONS, context=contexts(), max_seq_len=96, doc_stride=40, **setting)
        assert len(ours) == len(expected) == len(QUESTIONS)
        for mine, theirs in zip(ours, expected):
            assert_same(mine, theirs, atol=1e-4)


# --- batching, call forms, longdoc.pipeline ------------------------------------------------------------


@pytest.mark.parametrize("family", ["longformer", "lsg", "hat"])
def test_a_batch_of_pairs_answers_as_each_pair_alone(models, family):
    """Windows of several pairs in one padded, length-sorted batch give each pair the answers it gets alone."""
    qa = QuestionAnswerer.from_pretrained(models[family])
    questions, contexts_ = pairs(4, seed=3)
    batched = qa.answer(questions, contexts_, top_k=3, max_answer_len=20)
    assert len({len(w) for w in qa.preprocess(list(zip(questions, contexts_)))}) > 1  # windows of several lengths
    for question, context, together in zip(questions, contexts_, batched):
        alone = qa.answer([question], [context], top_k=3, max_answer_len=20)[0]
        assert len(together) == 3
        assert_same(together, alone, atol=1e-5)
        for answer in together:
            assert context[answer["start"]:answer["end"]] == answer["answer"] != ""


def test_transformers_call_forms(models):
    qa = QuestionAnswerer.from_pretrained(models["longformer"], max_answer_len=10)
    questions, contexts_ = pairs(2, seed=5)
    one = qa(question=questions[0], context=contexts_[0])
    assert isinstance(one, dict) and set(one) == {"answer", "score", "start", "end"}
    assert qa({"question": questions[0], "context": contexts_[0]}) == one == qa(questions[0], contexts_[0])
    several = qa(question=questions, context=contexts_)
    assert isinstance(several, list) and len(several) == 2
    assert_same(several[0], one)
    assert qa([{"question": q, "context": c} for q, c in zip(questions, contexts_)]) == several
    shared = qa(question=questions, context=contexts_[0])  # one context for every question
    assert len(shared) == 2
    assert_same(shared[0], one)
    top = qa(question=questions[0], context=contexts_[0], top_k=3)
    assert isinstance(top, list) and len(top) == 3 and top[0] == one
    assert [a["score"] for a in top] == sorted((a["score"] for a in top), reverse=True)
    # transformers' option names, and the stored default overridden per call
    assert qa(question=questions[0], context=contexts_[0], max_seq_len=64, max_answer_len=10) == \
        qa(question=questions[0], context=contexts_[0], max_length=64)
    with pytest.raises(ValueError, match="2 questions but 3 contexts"):
        qa(question=questions, context=contexts_ + ["w1"])
    with pytest.raises(TypeError, match="unknown question-answering options \\['beam'\\]"):
        qa(question=questions[0], context=contexts_[0], beam=3)


def test_longdoc_pipeline_is_a_drop_in_for_the_transformers_one(models):
    questions, contexts_ = pairs(3, seed=7)
    expected = QuestionAnswerer.from_pretrained(models["lsg"], top_k=2)(question=questions, context=contexts_)
    for name in ("question-answering", "qa", "extractive-qa"):
        qa = longdoc.pipeline(name, model=models["lsg"], top_k=2, device=-1)
        assert isinstance(qa, longdoc.QuestionAnswerer)
        assert qa(question=questions, context=contexts_) == expected
    assert isinstance(longdoc.load_pipeline(models["lsg"]), QuestionAnswerer)  # by the head its config names
    model, tokenizer = QuestionAnswerer.load(str(models["lsg"]))[:2]
    assert longdoc.pipeline("qa", model=model, tokenizer=tokenizer, top_k=2)(question=questions,
                                                                            context=contexts_) == expected
    with pytest.raises(ValueError, match="unknown task 'qestion-answering'; the tasks are .*question-answering "
                                         "\\(or qa, extractive-qa\\)"):
        longdoc.pipeline("qestion-answering", model=models["lsg"])


def test_the_stored_settings_are_the_defaults(models, tmp_path):
    model, tokenizer = QuestionAnswerer.load(str(models["longformer"]))[:2]
    model.config.question_answering = {"max_length": 64, "doc_stride": 10, "max_answer_length": 7,
                                       "handle_impossible_answer": True}
    qa = QuestionAnswerer(model, tokenizer)
    questions, contexts_ = pairs(2, seed=9)
    windows = qa.preprocess(list(zip(questions, contexts_)), **qa.defaults)
    assert max(len(w) for w in windows) == 64 and qa.defaults["max_answer_len"] == 7
    explicit = qa.answer(questions, contexts_, max_length=64, doc_stride=10, max_answer_len=7,
                         handle_impossible_answer=True)
    assert qa.answer(questions, contexts_) == explicit
    plain = QuestionAnswerer(model.__class__.from_pretrained(models["longformer"]), tokenizer)
    assert plain.defaults["max_length"] == 128 and plain.defaults["max_answer_len"] == 200  # model length; paragraphs


# --- HAT windows ---------------------------------------------------------------------------------------


def test_hat_windows_cover_a_long_context_with_overlap():
    tokenizer = bert_tokenizer()
    context, _ = toy_context(random.Random(11), (300, 320))
    windows = hat_windows(tokenizer, [QUESTION], [context], segment_size=16, max_segments=3, doc_stride=5)
    room = 16 - 3 - 3  # [CLS] q [SEP] chunk [SEP]
    whole = [tuple(o) for o in tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
             ["offset_mapping"]]
    assert len(windows) > 10 and all(w.inputs.num_segments <= 3 and w.inputs.cut_tokens == 0 for w in windows)
    seen = []
    for window in windows:
        offsets = window.view.offset_mapping[1:]  # after the CLS
        assert 0 < len(offsets) <= 3 * room and offsets == whole[whole.index(offsets[0]):][:len(offsets)]
        seen.append(set(offsets))
    assert set.union(*seen) == set(whole)  # every context token is read
    assert all(len(a & b) >= 5 for a, b in zip(seen, seen[1:]))  # consecutive windows share doc_stride tokens


def test_hat_decoding_through_views_finds_hat_qa_s_best_span(models):
    """One window: the best span by start x end probability (best_answers over the view) is the best by
    start + end logit (data/hat_qa.best_answer_span), the softmax's normaliser being one per window."""
    qa = QuestionAnswerer.from_pretrained(models["hat"])
    context = toy_context(random.Random(12), (60, 70))[0]
    windows = qa.preprocess([(QUESTION, context)], max_length=128)
    assert len(windows) == 1 and windows[0].inputs.num_segments > 1
    with torch.no_grad():
        out = qa.model(**{k: torch.tensor([getattr(windows[0].inputs, k)])
                          for k in ("input_ids", "attention_mask", "token_type_ids")})
    for length in (1, 5, 40):
        reference = best_answer_span(out.start_logits[0], out.end_logits[0], windows[0].inputs, length)
        ours = qa.answer([QUESTION], [context], max_answer_len=length, align_to_words=False)[0][0]
        assert (ours["start"], ours["end"]) == (reference.start, reference.end)


def test_no_answer_scores_are_best_answers_empty_answer():
    rng = np.random.default_rng(0)
    windows = []
    for example, length in ((0, 9), (0, 12), (1, 7)):
        p_mask = [0] + [1] * 3 + [0] * (length - 4)
        windows.append(QAWindow(example, [5] * length, [1] * length, None, [(i, i + 1) for i in range(length)], p_mask,
                                [0] * length, list(range(length))))
    starts = [rng.normal(size=len(w)).astype(np.float32) * 3 for w in windows]
    ends = [rng.normal(size=len(w)).astype(np.float32) * 3 for w in windows]
    answers = best_answers(starts, ends, windows, ["x" * 20] * 2, top_k=100, handle_impossible_answer=True)
    empty = [next(a["score"] for a in example if a["answer"] == "") for example in answers]
    np.testing.assert_allclose(no_answer_scores(starts, ends, windows, 2), empty, rtol=1e-6)


# --- errors --------------------------------------------------------------------------------------------


def test_errors_say_what_to_do(models, tmp_path):
    qa = QuestionAnswerer.from_pretrained(models["longformer"])
    context = toy_context(random.Random(13))[0]
    with pytest.raises(ValueError, match="doc_stride \\(64\\) must be at least 0 and smaller than the window "
                                         "\\(max_length 64\\)"):
        qa(question=QUESTION, context=context, max_length=64, doc_stride=64)
    with pytest.raises(ValueError, match="is 130 tokens long: .* leaves no room for context in a window of 128 tokens"):
        qa(question=" ".join(["w1"] * 130), context=context)
    with pytest.raises(ValueError, match="max_length 512 is longer than the model reads \\(128 tokens\\)"):
        qa(question=QUESTION, context=context, max_length=512)
    hat = QuestionAnswerer.from_pretrained(models["hat"])
    with pytest.raises(ValueError, match="leaves no room for context in HAT segments of 32 tokens"):
        hat(question=" ".join(["w1"] * 30), context=context)
    model = qa.model
    with pytest.raises(ValueError, match="ByT5Tokenizer is a slow \\(Python\\) tokenizer: .* fast"):
        QuestionAnswerer(model, transformers.ByT5Tokenizer())
    with pytest.raises(longdoc.errors.DataError, match="not a longdoc or transformers checkpoint \\(no config.json\\)"):
        QuestionAnswerer.from_pretrained(tmp_path)
    classifier, tokenizer = get_family("longformer").build("classification", str(models["longformer"]),
                                                           {"work_dir": str(tmp_path), "head_config": {"num_labels": 2}})
    classifier.save_pretrained(tmp_path / "classifier")
    with pytest.raises(longdoc.errors.DataError, match="holds a document classifier, trained with `longdoc train --task "
                                                       "classification`, not a question answerer"):
        QuestionAnswerer.from_pretrained(tmp_path / "classifier")
