"""Our Longformer classes against `transformers`' on the same random weights."""

import pytest
import torch
import transformers

import longdoc

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=80, pad_token_id=1, sep_token_id=2, bos_token_id=0, eos_token_id=2,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
PAIRS = {
    "LongformerModel": ("LongformerModel",),
    "LongformerForMaskedLM": ("LongformerForMaskedLM",),
    "LongformerForSequenceClassification": ("LongformerForSequenceClassification",),
    "LongformerForTokenClassification": ("LongformerForTokenClassification",),
    "LongformerForQuestionAnswering": ("LongformerForQuestionAnswering",),
    "LongformerForMultipleChoice": ("LongformerForMultipleChoice",),
}
WINDOWS = [8, [4, 8, 8]]  # one window; per-layer windows (ones the reference can run)


def pair(name, window, **overrides):
    """(ours, theirs) with identical random weights, in eval mode."""
    kw = {**TINY, "attention_window": window, **overrides}
    theirs = getattr(transformers, name)(transformers.LongformerConfig(**kw)).eval()
    ours = getattr(longdoc, name)(longdoc.LongformerConfig(**kw)).eval()
    result = ours.load_state_dict(theirs.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    return ours, theirs


def batch(b=3, t=37, seed=0, qa=False):
    """Random ids with padding in two rows; QA/choice rows get `<s> q </s></s> ctx </s>` separators."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (b, t), generator=gen)
    mask = torch.ones(b, t, dtype=torch.long)
    ends = [t, t - 12, t - 5][:b]
    for row, end in enumerate(ends):
        if qa:
            ids[row, [0, 4 + row, 5 + row, end - 1]] = torch.tensor([0, 2, 2, 2])
        ids[row, end:] = 1
        mask[row, end:] = 0
    glob = torch.zeros(b, t, dtype=torch.long)
    glob[0, [0, 3, 20]] = 1
    glob[1, 0] = 1
    return ids, mask, glob


def close_on_tokens(a, b, mask, atol=1e-4):
    m = mask.bool().reshape(*mask.shape, *([1] * (a.dim() - mask.dim())))
    torch.testing.assert_close(a * m, b * m, atol=atol, rtol=0)


@pytest.mark.parametrize("window", WINDOWS, ids=["window8", "per_layer"])
def test_base_model_outputs_hidden_states_and_attentions(window):
    ours, theirs = pair("LongformerModel", window)
    ids, mask, glob = batch()
    kw = dict(attention_mask=mask, global_attention_mask=glob, output_attentions=True, output_hidden_states=True)
    with torch.no_grad():
        a, b = theirs(ids, **kw), ours(ids, **kw)
    close_on_tokens(b.last_hidden_state, a.last_hidden_state, mask)
    torch.testing.assert_close(b.pooler_output, a.pooler_output, atol=1e-4, rtol=0)
    assert len(b.hidden_states) == len(a.hidden_states) == 4
    for x, y in zip(b.hidden_states, a.hidden_states):
        close_on_tokens(x, y, mask)
    for x, y in zip(b.attentions, a.attentions):  # (B, H, T, g + 2w + 1)
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    real_slots = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])[:, None, None, :]  # rows have 3, 1, 0 globals
    for x, y in zip(b.global_attentions, a.global_attentions):  # (B, H, T, g); theirs keeps window padding
        assert torch.all(x * (1 - real_slots) == 0)  # empty slots read as zero
        torch.testing.assert_close(x * real_slots, y[:, :, : x.shape[2]] * real_slots, atol=1e-5, rtol=0)


def test_many_global_tokens_take_the_projected_path():
    """With H * g >= hidden size the global rows project every key; results stay the same."""
    ours, theirs = pair("LongformerModel", 8)
    ids, mask, glob = batch()
    glob[0, 5:17] = 1  # 15 global tokens in row 0: 4 heads x 15 >= 32
    with torch.no_grad():
        a = theirs(ids, attention_mask=mask, global_attention_mask=glob)
        b = ours(ids, attention_mask=mask, global_attention_mask=glob)
    close_on_tokens(b.last_hidden_state, a.last_hidden_state, mask)


def test_base_model_without_global_tokens_or_mask():
    ours, theirs = pair("LongformerModel", 8)
    ids, _, _ = batch(b=2, t=29)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).last_hidden_state, theirs(ids).last_hidden_state, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", [n for n in PAIRS if n != "LongformerModel"])
def test_task_heads_and_default_global_attention(name):
    ours, theirs = pair(name, [4, 8, 8], num_labels=2 if name == "LongformerForQuestionAnswering" else 3)
    ids, mask, _ = batch(qa=True)
    if name == "LongformerForMultipleChoice":
        ids, mask = ids.view(1, 3, -1), mask.view(1, 3, -1)
    kw = dict(attention_mask=mask)
    labels = {
        "LongformerForMaskedLM": dict(labels=torch.where(mask.bool(), ids, -100)),
        "LongformerForSequenceClassification": dict(labels=torch.tensor([0, 2, 1])),
        "LongformerForTokenClassification": dict(labels=torch.randint(0, 3, ids.shape)),
        "LongformerForQuestionAnswering": dict(start_positions=torch.tensor([9, 10, 40]), end_positions=torch.tensor([12, 11, 14])),
        "LongformerForMultipleChoice": dict(labels=torch.tensor([1])),
    }[name]
    with torch.no_grad():  # no global_attention_mask: each head's default
        a, b = theirs(ids, **kw, **labels), ours(ids, **kw, **labels)
    torch.testing.assert_close(b.loss, a.loss, atol=1e-4, rtol=0)
    for field in ("logits", "start_logits", "end_logits"):
        if field in a:
            x, y = b[field], a[field]
            if x.dim() >= 2 and x.shape[:2] == mask.shape:
                close_on_tokens(x, y, mask)
            else:
                torch.testing.assert_close(x, y, atol=1e-4, rtol=0)


@pytest.mark.parametrize("problem_type,labels", [
    ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    ("regression", torch.randn(3, 3)),
])
def test_sequence_classification_problem_types(problem_type, labels):
    ours, theirs = pair("LongformerForSequenceClassification", 8, problem_type=problem_type)
    ids, mask, glob = batch()
    with torch.no_grad():
        a = theirs(ids, attention_mask=mask, global_attention_mask=glob, labels=labels)
        b = ours(ids, attention_mask=mask, global_attention_mask=glob, labels=labels)
    torch.testing.assert_close(b.loss, a.loss, atol=1e-4, rtol=0)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-4, rtol=0)


def test_gradients_match():
    ours, theirs = pair("LongformerForSequenceClassification", [4, 8, 8])
    ids, mask, glob = batch()
    labels = torch.tensor([0, 2, 1])
    kw = dict(attention_mask=mask, global_attention_mask=glob, labels=labels)
    theirs(ids, **kw).loss.backward()
    ours(ids, **kw).loss.backward()
    theirs_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        q = theirs_grads[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=0, msg=name)


def test_inputs_embeds_and_return_tuple():
    ours, theirs = pair("LongformerModel", 8)
    ids, mask, glob = batch(b=2, t=24)
    embeds = theirs.embeddings.word_embeddings(ids).detach()
    with torch.no_grad():
        a = theirs(inputs_embeds=embeds, attention_mask=mask, global_attention_mask=glob, return_dict=False)
        b = ours(inputs_embeds=embeds, attention_mask=mask, global_attention_mask=glob, return_dict=False)
    assert isinstance(b, tuple) and len(b) == len(a)
    close_on_tokens(b[0], a[0], mask)


def test_checkpoints_load_both_ways(tmp_path):
    ours, theirs = pair("LongformerForMaskedLM", [4, 8, 8])
    theirs.save_pretrained(tmp_path / "theirs")
    ours.save_pretrained(tmp_path / "ours")
    from_theirs = longdoc.LongformerForMaskedLM.from_pretrained(tmp_path / "theirs").eval()
    from_ours = transformers.LongformerForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    assert from_theirs.config.attention_window == [4, 8, 8]
    ids, mask, glob = batch()
    with torch.no_grad():
        ref = theirs(ids, attention_mask=mask, global_attention_mask=glob).logits
        for model in (from_theirs, from_ours):
            close_on_tokens(model(ids, attention_mask=mask, global_attention_mask=glob).logits, ref, mask)
    # the LM decoder stays tied to the word embeddings after loading
    assert from_theirs.lm_head.decoder.weight.data_ptr() == from_theirs.longformer.embeddings.word_embeddings.weight.data_ptr()


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = longdoc.LongformerForSequenceClassification(longdoc.LongformerConfig(**{**TINY, "attention_window": 8}))
    ids, mask, glob = batch()
    labels = torch.tensor([0, 2, 1])
    model.train()
    model(ids, attention_mask=mask, global_attention_mask=glob, labels=labels).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.longformer.encoder.layer)
    model(ids, attention_mask=mask, global_attention_mask=glob, labels=labels).loss.backward()
    for n, p in model.named_parameters():
        if n in plain:
            torch.testing.assert_close(p.grad, plain[n], atol=1e-5, rtol=0, msg=n)


def test_dropout_training_mode_runs_and_differs_from_eval():
    torch.manual_seed(0)
    cfg = longdoc.LongformerConfig(**{**TINY, "attention_window": 8, "attention_probs_dropout_prob": 0.2,
                                      "hidden_dropout_prob": 0.1})
    model = longdoc.LongformerModel(cfg)
    ids, mask, glob = batch()
    model.train()
    out = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    out.sum().backward()
    model.eval()
    with torch.no_grad():
        ref = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    assert not torch.allclose(out, ref)
    assert all(p.grad is not None for n, p in model.named_parameters() if "pooler" not in n)


def test_published_checkpoint_config_fields_load(tmp_path):
    """config.json of allenai/longformer-base-4096 carries fields of the original code base
    (attention_mode, ignore_attention_mask, onnx_export): they load, and the weights with them."""
    import json

    ours, theirs = pair("LongformerForQuestionAnswering", 8, num_labels=2)
    theirs.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(attention_mode="longformer", ignore_attention_mask=False, onnx_export=False,
                  architectures=["LongformerForQuestionAnswering"])
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = longdoc.LongformerForQuestionAnswering.from_pretrained(tmp_path).eval()
    ids, mask, _ = batch(qa=True)
    with torch.no_grad():
        close_on_tokens(loaded(ids, attention_mask=mask).start_logits, theirs(ids, attention_mask=mask).start_logits, mask)
