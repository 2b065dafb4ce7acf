"""Question-answering models of the Longformer, LSG and HAT families.

Longformer: checkpoints cross both ways between longdoc and `transformers` 5 (in-process) and 4.57
(the `.venv-qa` oracle, a subprocess) with no missing weights and the same logits, for RoBERTa-style
pairs (`<s> q </s></s> c </s>`, where transformers places its own global attention) and BERT-style
pairs (`[CLS] q [SEP] c [SEP]`, a MiniLM converted to Longformer, where transformers' own placement
refuses the input and ours finds the question). LSG: `question_global` against the dense oracle,
and what it changes. All three: gradient checkpointing gives the same gradients.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import transformers

import longdoc
import longdoc.assets
import longdoc.models.lsg as lsg_module
from longdoc.attention.lsg import lsg_attention
from longdoc.attention.lsg_pattern import LSGGeometry, LSGPattern
from longdoc.attention.reference import dense_lsg_attention
from longdoc.convert import convert
from longdoc.models.lsg import LSGBertConfig, LSGRobertaConfig, with_question_globals
from longdoc.models.pair_inputs import question_mask

ROOT = Path(__file__).resolve().parents[1]
QA_ORACLE_PYTHON = Path(os.environ.get("LONGDOC_QA_ORACLE", ROOT / ".venv-qa" / "bin" / "python"))
QA_ORACLE_SCRIPT = ROOT / "tests" / "oracles" / "qa_longformer_oracle.py"

# RoBERTa-style ids: <s>=0, <pad>=1, </s>=2
TINY_LONGFORMER = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=80, pad_token_id=1, sep_token_id=2,
                       bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       attention_window=[4, 8, 8], num_labels=2, initializer_range=0.2)
ROBERTA_IDS = dict(cls=0, sep=2, pad=1, first_word=3)


def pair_batch(question_lengths, context_lengths, ids: dict, vocab: int, roberta: bool, seed: int = 0):
    """Pair encodings of random words, padded to the longest: rows `<s> q </s></s> c </s>` (roberta)
    or `[CLS] q [SEP] c [SEP]`. Returns (inputs, question) where question (B, T) marks [CLS] + q."""
    gen = torch.Generator().manual_seed(seed)
    rows, questions = [], []
    for q_len, c_len in zip(question_lengths, context_lengths):
        words = lambda n: torch.randint(ids["first_word"], vocab, (n,), generator=gen).tolist()
        middle = [ids["sep"], ids["sep"]] if roberta else [ids["sep"]]
        rows.append([ids["cls"], *words(q_len), *middle, *words(c_len), ids["sep"]])
        questions.append(1 + q_len)
    total = max(map(len, rows))
    input_ids = torch.full((len(rows), total), ids["pad"])
    attention_mask = torch.zeros(len(rows), total, dtype=torch.long)
    token_type_ids = torch.zeros(len(rows), total, dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, :len(row)] = torch.tensor(row)
        attention_mask[index, :len(row)] = 1
        if not roberta:  # BERT pairs: type 1 from the context on
            token_type_ids[index, questions[index] + 1:len(row)] = 1
    question = (torch.arange(total)[None, :] < torch.tensor(questions)[:, None]).long()
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    if not roberta:
        inputs["token_type_ids"] = token_type_ids
    return inputs, question


def assert_same_logits(ours, theirs, attention_mask, atol=1e-4):
    real = attention_mask.bool()
    for name in ("start_logits", "end_logits"):
        torch.testing.assert_close(ours[name][real], theirs[name][real], atol=atol, rtol=0, msg=lambda m: f"{name}: {m}")


def logits_of(model, **inputs) -> dict:
    with torch.no_grad():
        out = model(**inputs)
    return {"start_logits": out.start_logits, "end_logits": out.end_logits}


def roberta_batch(seed=0):
    # 37 tokens: not a multiple of the windows (4, 8); three question lengths; padding in two rows
    return pair_batch([4, 7, 2], [28, 17, 22], ROBERTA_IDS, TINY_LONGFORMER["vocab_size"], roberta=True, seed=seed)


# --- Longformer: the question mask ------------------------------------------------------------


@pytest.mark.parametrize("roberta", [True, False], ids=["roberta-pairs", "bert-pairs"])
def test_question_is_every_token_before_the_first_separator(roberta):
    ids = ROBERTA_IDS if roberta else dict(cls=101, sep=102, pad=0, first_word=1000)
    inputs, question = pair_batch([3, 9, 1], [5, 2, 11], ids, 2000, roberta=roberta, seed=3)
    assert question_mask(inputs["input_ids"], ids["sep"]).tolist() == question.tolist()


def test_question_mask_of_pairs_the_tokenizer_encodes():
    tokenizer = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm())
    encoded = tokenizer(["who wrote the kernel documentation?", "when?"],
                        ["It was written by many people over thirty years.", "In 1991, in Helsinki."],
                        padding=True, return_tensors="pt")
    for row in range(2):  # [CLS] and the question's tokens: everything before the first [SEP]
        expected = [1] + [int(s == 0) for s in encoded.sequence_ids(row)[1:]]
        expected = expected[:expected.index(0)] + [0] * (len(expected) - expected.index(0))
        assert question_mask(encoded["input_ids"], tokenizer.sep_token_id)[row].tolist() == expected


def test_question_mask_errors_say_what_is_missing():
    with pytest.raises(ValueError, match=r"rows \[1\] have no separator.*encode the input as a pair"):
        question_mask(torch.tensor([[0, 5, 2, 6, 2], [0, 5, 6, 7, 1]]), 2)
    with pytest.raises(ValueError, match="sep_token_id"):
        question_mask(torch.tensor([[0, 5, 2]]), None)


# --- Longformer: transformers 5, in process ---------------------------------------------------


def test_transformers_checkpoint_loads_in_longdoc_with_its_logits(tmp_path):
    """RoBERTa-style pairs: transformers places global attention on the question itself; ours must agree."""
    torch.manual_seed(0)
    theirs = transformers.LongformerForQuestionAnswering(transformers.LongformerConfig(**TINY_LONGFORMER)).eval()
    theirs.save_pretrained(tmp_path)
    ours, info = longdoc.LongformerForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs, question = roberta_batch()
    expected = logits_of(theirs, **inputs)
    assert_same_logits(logits_of(ours.eval(), **inputs), expected, inputs["attention_mask"])
    # the question's global attention matters: with the first token alone as global the logits move
    first_only = torch.zeros_like(question)
    first_only[:, 0] = 1
    moved = logits_of(ours, **inputs, global_attention_mask=first_only)["start_logits"]
    assert (moved - expected["start_logits"]).abs().max() > 1e-2


def test_longdoc_checkpoint_loads_in_transformers_with_our_logits(tmp_path):
    torch.manual_seed(1)
    ours = longdoc.LongformerForQuestionAnswering(longdoc.LongformerConfig(**TINY_LONGFORMER)).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = transformers.LongformerForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs, _ = roberta_batch(seed=1)
    assert_same_logits(logits_of(ours, **inputs), logits_of(theirs.eval(), **inputs), inputs["attention_mask"])


@pytest.fixture(scope="module")
def minilm_longformer_qa(tmp_path_factory) -> Path:
    """The packaged MiniLM (BERT, 6 x 384) converted to a 1024-token Longformer (window 16), with a
    QA head of large random weights, saved by longdoc."""
    folder = tmp_path_factory.mktemp("minilm-qa")
    convert(longdoc.assets.packaged_minilm(), folder / "encoder", to="longformer", max_length=1024, window=16)
    model = longdoc.LongformerForQuestionAnswering.from_pretrained(folder / "encoder")
    torch.manual_seed(2)
    torch.nn.init.normal_(model.qa_outputs.weight, std=1.0)
    model.save_pretrained(folder / "qa")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "encoder")
    tokenizer.save_pretrained(folder / "qa")
    return folder / "qa"


def bert_batch(tokenizer, seed=4):
    # 75 tokens: not a multiple of the window 16; the question lengths differ; padding in two rows
    ids = dict(cls=tokenizer.cls_token_id, sep=tokenizer.sep_token_id, pad=tokenizer.pad_token_id, first_word=1000)
    return pair_batch([5, 11, 3], [66, 40, 52], ids, tokenizer.vocab_size, roberta=False, seed=seed)


def test_bert_style_pairs_from_a_converted_encoder(minilm_longformer_qa, tmp_path):
    """[CLS] q [SEP] c [SEP] has two separators: transformers' own global placement refuses it, ours finds
    [CLS] + q, which is what transformers computes given that mask; and what transformers saves of it
    loads back in longdoc."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_longformer_qa)
    ours = longdoc.LongformerForQuestionAnswering.from_pretrained(minilm_longformer_qa).eval()
    theirs, info = transformers.LongformerForQuestionAnswering.from_pretrained(minilm_longformer_qa,
                                                                               output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs, question = bert_batch(tokenizer)
    with pytest.raises(Exception, match="3|three|sep"):
        theirs.eval()(**inputs)
    expected = logits_of(theirs, **inputs, global_attention_mask=question)
    assert_same_logits(logits_of(ours, **inputs), expected, inputs["attention_mask"])
    theirs.save_pretrained(tmp_path)
    again, info = longdoc.LongformerForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert_same_logits(logits_of(again.eval(), **inputs), expected, inputs["attention_mask"])


# --- Longformer: transformers 4.57 (the .venv-qa oracle) ----------------------------------------


def _qa_oracle(*args) -> None:
    if not QA_ORACLE_PYTHON.exists():
        if os.environ.get("LONGDOC_REQUIRE_ORACLE"):
            pytest.fail(f"the QA oracle (transformers 4.57) is missing at {QA_ORACLE_PYTHON}: run `make oracle`")
        pytest.skip(f"QA oracle not installed at {QA_ORACLE_PYTHON} (`make oracle` builds it)")
    result = subprocess.run([str(QA_ORACLE_PYTHON), str(QA_ORACLE_SCRIPT), *map(str, args)], capture_output=True,
                            text=True)
    if result.returncode:
        raise RuntimeError(f"QA oracle failed:\n{result.stderr[-4000:]}")


def test_longdoc_checkpoints_load_in_transformers_457(minilm_longformer_qa, tmp_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_longformer_qa)
    bert = longdoc.LongformerForQuestionAnswering.from_pretrained(minilm_longformer_qa).eval()
    bert_inputs, question = bert_batch(tokenizer, seed=5)
    torch.manual_seed(3)
    roberta = longdoc.LongformerForQuestionAnswering(longdoc.LongformerConfig(**TINY_LONGFORMER)).eval()
    roberta_inputs, _ = roberta_batch(seed=2)
    cases = {"bert": (bert, bert_inputs, {"global_attention_mask": question}),  # 4.57 too asserts 3 separators
             "roberta": (roberta, roberta_inputs, {})}
    for name, (model, inputs, extra) in cases.items():
        model.save_pretrained(tmp_path / name)
        torch.save({**inputs, **extra}, tmp_path / name / "inputs.pt")
        _qa_oracle("run", tmp_path / name)
        theirs = torch.load(tmp_path / name / "outputs.pt")
        assert theirs["transformers_version"].startswith("4.57")
        assert theirs["missing_keys"] == [] and theirs["unexpected_keys"] == [] and theirs["mismatched_keys"] == []
        assert_same_logits(logits_of(model, **inputs), theirs, inputs["attention_mask"])


def test_transformers_457_checkpoint_loads_in_longdoc(tmp_path):
    inputs, _ = roberta_batch(seed=6)
    torch.save(inputs, tmp_path / "inputs.pt")
    (tmp_path / "config.json.in").write_text(json.dumps({**TINY_LONGFORMER, "seed": 7}))
    _qa_oracle("make", tmp_path / "config.json.in", tmp_path)
    ours, info = longdoc.LongformerForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert_same_logits(logits_of(ours.eval(), **inputs), torch.load(tmp_path / "outputs.pt"), inputs["attention_mask"])


# --- LSG: the question attended globally (`question_global`) ------------------------------------

DETERMINISTIC = ["norm", "pooling", "stride", "block_stride", "bos_pooling", "none"]
BERT_IDS = dict(cls=2, sep=3, pad=0, first_word=5)


def lsg_config(kind="norm", question_global=True, layers=2, roberta=False, **overrides):
    fields = dict(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                  intermediate_size=40, max_position_embeddings=160, block_size=8, sparse_block_size=4,
                  sparsity_factor=2, sparsity_type=kind, num_global_tokens=2, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, initializer_range=0.2, question_global=question_global)
    if roberta:
        return LSGRobertaConfig(**{**fields, "pad_token_id": 1, "sep_token_id": 2, "bos_token_id": 0, **overrides})
    return LSGBertConfig(**{**fields, "pad_token_id": 0, "sep_token_id": 3, **overrides})


def lsg_batch(question_lengths=(3, 9, 5), context_lengths=(60, 37, 48), roberta=False, seed=0):
    ids = ROBERTA_IDS if roberta else BERT_IDS
    return pair_batch(question_lengths, context_lengths, ids, 60, roberta=roberta, seed=seed)


@pytest.mark.parametrize("kind", DETERMINISTIC)
def test_lsg_kernel_with_per_row_global_slots_matches_the_dense_oracle(kind):
    """Global slots visible per row (a question of each row's length): kernel = dense oracle."""
    geo = LSGGeometry(8, 4, 2, kind, 2 + 6)
    t = 7 * 8
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 8 + t, 8) for _ in range(3))
    is_key = torch.arange(t)[None, :] < torch.tensor([[t], [t - 11], [29]])
    visible = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0]]).bool()
    pattern = LSGPattern(geo, is_key, visible)
    real = torch.cat([visible, is_key], dim=1)[:, None, :, None]
    out, ref = lsg_attention(q, k, v, pattern), dense_lsg_attention(q, k, v, pattern)
    torch.testing.assert_close(out * real, ref * real, atol=1e-5, rtol=0)
    # an invisible slot is not attended: changing its key and value changes nothing
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 7], v2[0, :, 7] = 100.0, 100.0
    torch.testing.assert_close(lsg_attention(q, k2, v2, pattern)[0, :, 8:], out[0, :, 8:])


def test_question_globals_pattern():
    """The question's tokens get global slots (visible where the row has them) and are masked as keys;
    padding and mask_first_token keep their meaning."""
    geo = LSGGeometry(4, 4, 2, "norm", 1)
    is_key = torch.arange(12)[None, :] < torch.tensor([[12], [9]])
    is_key[:, 0] = False  # mask_first_token
    question = torch.zeros(2, 10, dtype=torch.bool)  # 10 tokens, padded to 12 by `adaptive`
    question[0, :3] = True
    question[1, :5] = True
    pattern = with_question_globals(LSGPattern(geo, is_key), question)
    assert pattern.geometry.num_global_tokens == 1 + 5
    assert pattern.global_key_mask().tolist() == [[True, False, True, True, False, False],
                                                   [True, False, True, True, True, True]]
    assert pattern.is_key.tolist() == [[False] * 3 + [True] * 9, [False] * 5 + [True] * 4 + [False] * 3]


@pytest.mark.parametrize("roberta", [False, True], ids=["bert", "roberta"])
def test_question_global_changes_nothing_under_full_attention(roberta):
    """Inputs of at most two blocks are attended densely: the question is then seen by every token
    anyway, so question_global must give the same outputs (nothing is attended twice)."""
    torch.manual_seed(0)
    off = lsg_module.LSGRobertaModel if roberta else lsg_module.LSGBertModel
    model = off(lsg_config(question_global=False, roberta=roberta, block_size=16)).eval()
    inputs, _ = lsg_batch((3, 7, 1), (20, 11, 15), roberta=roberta)  # 29 tokens: two blocks of 16 after padding
    with torch.no_grad():
        plain = model(**inputs).last_hidden_state
        model.config.question_global = True
        with_question = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(with_question[real], plain[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", DETERMINISTIC)
@pytest.mark.parametrize("first", [dict(), dict(mask_first_token=True, pool_with_global=True),
                                   dict(pool_with_global=False)], ids=["default", "mask-first", "no-pool"])
def test_lsg_qa_with_question_global_matches_the_dense_oracle(kind, first, monkeypatch):
    """The whole QA model, question slots and all, with every layer's attention computed by the dense
    oracle instead of the kernel: the same logits (padding, batch of 3, 69 tokens = not whole blocks)."""
    torch.manual_seed(1)
    model = longdoc.LSGBertForQuestionAnswering(lsg_config(kind, **first)).eval()
    inputs, _ = lsg_batch(seed=2)
    kernel = logits_of(model, **inputs)
    monkeypatch.setattr(lsg_module, "lsg_attention", lambda q, k, v, pattern, dropout=0.0, bias=None:
                        dense_lsg_attention(q, k, v, pattern))
    assert_same_logits(kernel, logits_of(model, **inputs), inputs["attention_mask"], atol=1e-5)


def test_question_global_reaches_far_context_in_one_layer():
    """One layer, both ways: without question_global a far context position and the question cannot see
    each other (outside local and sparse reach; the learned globals carry only their own embeddings);
    with it, a question word changes the far logits and a far word changes the question's logits."""
    inputs, question = lsg_batch((4, 4, 4), (90, 90, 90), seed=3)
    far = slice(80, 95)  # more than block + sparse reach away from the question
    new_question_word, new_far_word = inputs["input_ids"].clone(), inputs["input_ids"].clone()
    new_question_word[:, 2] = torch.where(new_question_word[:, 2] == 7, 8, 7)
    new_far_word[:, 88] = torch.where(new_far_word[:, 88] == 7, 8, 7)
    for question_global in (False, True):
        torch.manual_seed(4)
        model = longdoc.LSGBertForQuestionAnswering(lsg_config(question_global=question_global, layers=1)).eval()
        before = logits_of(model, **inputs)["start_logits"]
        at_far = logits_of(model, **{**inputs, "input_ids": new_question_word})["start_logits"]
        at_question = logits_of(model, **{**inputs, "input_ids": new_far_word})["start_logits"]
        moved = [(at_far - before)[:, far].abs().max(), (at_question - before)[:, 1:5].abs().max()]
        for change in moved:
            assert (change > 1e-3) if question_global else (change == 0), (question_global, moved)


def test_question_global_defaults():
    """On for a QA model longdoc builds (fresh, or from an encoder checkpoint); off for an lsg-converter QA
    checkpoint (its config names a QA architecture and has no question_global), so it gives their outputs;
    always kept when set; never on for the encoder alone."""
    fresh = longdoc.LSGBertForQuestionAnswering(lsg_config(question_global=None))
    assert fresh.config.question_global is True
    from_encoder = lsg_config(question_global=None, architectures=["LSGBertModel"])
    assert longdoc.LSGRobertaForQuestionAnswering(lsg_config(question_global=None, roberta=True,
                                                             architectures=["LSGRobertaForMaskedLM"])
                                                  ).config.question_global is True
    assert longdoc.LSGBertForQuestionAnswering(from_encoder).config.question_global is True
    converter_qa = lsg_config(question_global=None, architectures=["LSGBertForQuestionAnswering"])
    assert longdoc.LSGBertForQuestionAnswering(converter_qa).config.question_global is False
    assert longdoc.LSGBertForQuestionAnswering(lsg_config(question_global=False)).config.question_global is False
    assert lsg_module.LSGBertModel(lsg_config(question_global=None)).config.question_global is None


def test_question_global_round_trips_and_explains_bad_input(tmp_path):
    torch.manual_seed(5)
    model = longdoc.LSGBertForQuestionAnswering(lsg_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = longdoc.LSGBertForQuestionAnswering.from_pretrained(tmp_path).eval()
    assert loaded.config.question_global is True and loaded.config.sep_token_id == 3
    inputs, question = lsg_batch(seed=6)
    expected = logits_of(model, **inputs)
    assert_same_logits(logits_of(loaded, **inputs), expected, inputs["attention_mask"], atol=0)
    # an explicit question_mask is the same as the one found from the separator
    assert_same_logits(logits_of(model, **inputs, question_mask=question), expected, inputs["attention_mask"], atol=0)
    with pytest.raises(ValueError, match="prefix of every row"):
        model(**inputs, question_mask=1 - question)
    model.config.sep_token_id = None
    with pytest.raises(ValueError, match="sep_token_id"):
        model(**inputs)
    with pytest.raises(ValueError, match="question_global is not supported"):
        longdoc.LSGMPNetModel(longdoc.LSGMPNetConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=4, intermediate_size=40,
                                                     question_global=True))


# --- gradient checkpointing, all three families ------------------------------------------------


def _longformer_qa():
    model = longdoc.LongformerForQuestionAnswering(longdoc.LongformerConfig(
        **{**TINY_LONGFORMER, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}))
    inputs, _ = roberta_batch(seed=8)
    return model, inputs, model.longformer.encoder.layer


def _lsg_qa():
    model = longdoc.LSGBertForQuestionAnswering(lsg_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    inputs, _ = lsg_batch(seed=9)
    return model, inputs, model.bert.encoder.layer


def _hat_qa():
    from test_hat_qa import batch_of, hat_config, words
    from tiny_checkpoints import bert_tokenizer

    model = longdoc.HATForQuestionAnswering(hat_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    rng = torch.Generator().manual_seed(10)
    _, inputs = batch_of(bert_tokenizer(), ["w1 w2", "w3"], [words(rng, 30), words(rng, 13)])
    layers = [module for module in model.modules() if type(module).__name__ == "EncoderLayer"]
    return model, inputs, layers


@pytest.mark.parametrize("build", [_longformer_qa, _lsg_qa, _hat_qa], ids=["longformer", "lsg", "hat"])
def test_gradient_checkpointing_gives_the_same_gradients(build):
    """Training mode with dropout: the same gradients (within 1e-5) with every layer recomputed in backward."""
    torch.manual_seed(11)
    model, inputs, layers = build()
    model.train()
    length = inputs["input_ids"].shape[1]
    targets = dict(start_positions=torch.tensor([5, 9, length + 3])[:len(inputs["input_ids"])],  # one out of range
                   end_positions=torch.tensor([7, 9, 2])[:len(inputs["input_ids"])])
    calls = []
    layers[0].attention.self.register_forward_hook(lambda *_: calls.append(1))

    def gradients():
        model.zero_grad()
        torch.manual_seed(12)  # the same dropout masks in both runs
        model(**inputs, **targets).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    assert len(calls) == 1
    with pytest.warns(FutureWarning):  # transformers 5 renamed it activation_checkpointing_enable
        model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in layers)
    checkpointed = gradients()
    assert len(calls) == 3  # the layer ran again in backward
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-5, rtol=0, msg=lambda m: f"{name}: {m}")
