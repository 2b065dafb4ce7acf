"""HAT model behaviour beyond reference parity: layouts, bad input, what the reference gets wrong
(heads that do not construct, inputs_embeds, gradient checkpointing, in-place hidden states)."""

import json

import pytest
import torch
import torch.nn.functional as F

import longdoc
from longdoc.models.hat_config import ADHOC_BASE_LAYOUT, HIERARCHICAL_BASE_LAYOUT, parse_layout

SIZE = 8


def config(layout="S|SD|D", **overrides):
    fields = dict(vocab_size=60, hidden_size=32, num_attention_heads=4, intermediate_size=48, max_sentence_size=SIZE,
                  max_sentences=5, encoder_layout=layout, pad_token_id=1, num_labels=3, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, initializer_range=0.2)
    return longdoc.HATConfig(**{**fields, **overrides})


def documents(segments=(3, 2, 1), total=3, seed=0):
    """(input_ids, attention_mask) (B, total * SIZE): each row has its real segments (random lengths,
    [CLS]=0 first) then empty ones."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.full((len(segments), total, SIZE), 1)
    mask = torch.zeros_like(ids)
    for row, count in enumerate(segments):
        for n in range(count):
            length = int(torch.randint(2, SIZE + 1, (1,), generator=generator))
            ids[row, n, :length] = torch.randint(5, 60, (length,), generator=generator)
            ids[row, n, 0] = 0
            mask[row, n, :length] = 1
    return ids.view(len(segments), -1), mask.view(len(segments), -1)


def test_layouts_parse_from_strings_and_the_published_dict():
    assert parse_layout("S|SD|D") == ((True, False), (True, True), (False, True))
    cfg = config("S|SD|D")
    assert cfg.num_hidden_layers == 3 and cfg.layout == "S|SD|D"
    assert cfg.encoder_layout["2"] == {"sentence_encoder": False, "document_encoder": True}
    again = longdoc.HATConfig.from_dict(cfg.to_dict())
    assert again.layout == "S|SD|D" and again.max_sentence_length == SIZE
    assert config(HIERARCHICAL_BASE_LAYOUT).num_hidden_layers == 12
    assert config(ADHOC_BASE_LAYOUT).layout.endswith("S|SD|D|D|D") and config(ADHOC_BASE_LAYOUT).num_hidden_layers == 15
    assert longdoc.HATConfig(num_hidden_layers=4).layout == "S|S|SD|S"


@pytest.mark.parametrize("layout, message", [
    ("S|X|SD", r'layer 1 is .X.*layout := layer \("\|" layer\)\*'),
    ("", "grammar"),
    ("DS|S", "layer 0"),
    ({"0": {"sentence_encoder": False, "document_encoder": False}}, "neither encoder"),
    ({"1": {"sentence_encoder": True, "document_encoder": False}}, "layer numbers"),
])
def test_invalid_layouts_show_the_grammar(layout, message):
    with pytest.raises(ValueError, match=message):
        config(layout)


def test_layout_length_must_match_the_number_of_layers():
    with pytest.raises(ValueError, match="has 3 layers but num_hidden_layers=4"):
        config("S|SD|D", num_hidden_layers=4)
    with pytest.raises(ValueError, match="disagree"):
        longdoc.HATConfig(max_sentence_size=64, max_sentence_length=32)


def test_bad_inputs_say_what_to_do():
    model = longdoc.HATModel(config()).eval()
    ids, mask = documents()
    with pytest.raises(ValueError, match="not a whole number of segments of max_sentence_size=8"):
        model(ids[:, :-3], attention_mask=mask[:, :-3])
    long_ids = torch.zeros(1, 6 * SIZE, dtype=torch.long)
    with pytest.raises(ValueError, match=r"6 segments is more than this model's max_sentences=5.*truncate.*"
                                         r"--max-sentences 6"):
        model(long_ids)
    with pytest.raises(ValueError, match="token ids must lie in"):
        model(ids + 100)
    with pytest.raises(ValueError, match="position_ids must lie in"):
        model(ids, position_ids=torch.full_like(ids, 40))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, attention_mask=mask[:, :8])


def test_inputs_embeds_equal_input_ids():
    """The reference numbers positions over the whole flat sequence for inputs_embeds (past its table);
    ours restart in every segment, with padding taken from the attention mask."""
    model = longdoc.HATModel(config()).eval()
    ids, mask = documents()
    with torch.no_grad():
        from_ids = model(ids, attention_mask=mask).last_hidden_state
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(from_embeds, from_ids, atol=1e-6, rtol=0)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = longdoc.HATForSequenceClassification(config("SD|D|S")).train()
    ids, mask = documents()
    labels = torch.tensor([0, 2, 1])

    def grads():
        model.zero_grad()
        model(ids, attention_mask=mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable()
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and len(plain) > 20
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5)


def test_cross_segment_layer_does_not_overwrite_earlier_hidden_states():
    model = longdoc.HATModel(config("S|D")).eval()
    ids, mask = documents()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_hidden_states=True)
        after_s = model.encoder.layer[0](out.hidden_states[0], mask.view(-1, SIZE).bool(),
                                         mask[:, ::SIZE].bool(), None)[0]
    torch.testing.assert_close(out.hidden_states[1], after_s)  # the reference returns layer 2's [CLS] here
    assert not torch.allclose(out.hidden_states[1][:, ::SIZE], out.hidden_states[2][:, ::SIZE])
    torch.testing.assert_close(out.hidden_states[1][:, 1::SIZE], out.hidden_states[2][:, 1::SIZE])


def test_real_tokens_do_not_depend_on_trailing_empty_segments():
    model = longdoc.HATModel(config()).eval()
    ids, mask = documents(total=3)
    more_ids, more_mask = documents(total=5)
    with torch.no_grad():
        short = model(ids, attention_mask=mask).last_hidden_state
        longer = model(more_ids, attention_mask=more_mask).last_hidden_state[:, : 3 * SIZE]
    real = mask.bool()
    torch.testing.assert_close(longer[real], short[real], atol=1e-5, rtol=0)


def test_token_classification_and_question_answering_train():
    """Both heads fail to construct in the reference."""
    ids, mask = documents()
    tagger = longdoc.HATForTokenClassification(config())
    labels = torch.randint(0, 3, ids.shape)
    out = tagger(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 3 * SIZE, 3)
    out.loss.backward()
    assert tagger.hi_transformer.embeddings.word_embeddings.weight.grad is not None
    reader = longdoc.HATForQuestionAnswering(config(num_labels=2))
    out = reader(ids, attention_mask=mask, start_positions=torch.tensor([1, 3, 2]), end_positions=torch.tensor([4, 5, 3]))
    assert out.start_logits.shape == (3, 3 * SIZE) and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="head_mask"):
        reader(ids, head_mask=torch.ones(4))


def test_outputs_as_tuples_keep_hidden_states_and_attentions():
    model = longdoc.HATForSequenceClassification(config("S|SD|D")).eval()
    ids, mask = documents()
    with torch.no_grad():
        as_dict = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        as_tuple = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True,
                         return_dict=False)
    assert len(as_tuple) == 4 and torch.equal(as_tuple[0], as_dict.logits)
    assert len(as_tuple[1]) == 4  # embeddings + 3 layers
    segment_attn, document_attn = as_dict.attentions, as_dict.sentence_attentions
    assert segment_attn[0].shape == (9, 4, SIZE, SIZE) and segment_attn[2] is None
    assert document_attn[0] is None and document_attn[1].shape == (3, 4, 3, 3)
    torch.testing.assert_close(document_attn[2].sum(-1), torch.ones(3, 4, 3))
    assert document_attn[2][2, :, :, 1:].abs().max() == 0  # row 2 has one segment: the empty ones get no weight


def test_sequential_multi_label_loss_ignores_empty_segments():
    model = longdoc.HATForSequentialSentenceClassification(config(problem_type="multi_label_classification"))
    ids, mask = documents()
    labels = torch.randint(0, 2, (3, 3, 3)).float()
    labels[1, 2] = -1
    labels[2, 1:] = -1
    out = model(ids, attention_mask=mask, labels=labels)
    keep = labels[:, :, 0] != -1
    expected = F.binary_cross_entropy_with_logits(out.logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, expected)
    single = longdoc.HATForSequentialSentenceClassification(config())
    labels = torch.tensor([[0, 1, 2], [2, 1, -100], [1, -100, -100]])
    out = single(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.view(-1, 3), labels.view(-1)))


def test_pooling_choice_is_saved_with_the_model(tmp_path):
    model = longdoc.HATForSequenceClassification(config(), pooling="attentive").eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["segment_pooling"] == "attentive"
    again = longdoc.HATForSequenceClassification.from_pretrained(tmp_path).eval()
    ids, mask = documents()
    with torch.no_grad():
        torch.testing.assert_close(again(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)
    with pytest.raises(ValueError, match="pooling='mean' is not one of max, first, last, attentive"):
        longdoc.HATForSequenceClassification(config(), pooling="mean")


def test_auto_classes_read_hat_checkpoints(tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    longdoc.HATForSequenceClassification(config()).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), longdoc.HATConfig)
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(tmp_path),
                      longdoc.HATForSequenceClassification)


def test_a_document_without_padding_runs_unmasked_and_equal():
    """A batch with no padding skips the masks (fused attention runs faster without one); its rows must
    equal the same rows inside a padded batch."""
    model = longdoc.HATForSequenceClassification(config("S|SD|D")).eval()
    ids, mask = documents(segments=(3, 2), total=3)
    ids[0], mask[0] = torch.randint(5, 60, (3 * SIZE,)), 1
    ids[0, ::SIZE] = 0
    with torch.no_grad():
        alone = model(ids[:1]).logits
        in_batch = model(ids, attention_mask=mask).logits[:1]
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["max", "last", "attentive", "first"])
def test_pooling_only_real_segments_does_not_depend_on_padding(pooling):
    """pool_empty_segments=False: the logits of a document are the same however many empty segments
    pad it; the reference's pooling (default) reads the empty slots too."""
    ids, mask = documents(segments=(3, 2, 1), total=3)
    more_ids, more_mask = documents(segments=(3, 2, 1), total=5)
    torch.manual_seed(0)
    model = longdoc.HATForSequenceClassification(config(pool_empty_segments=False), pooling=pooling).eval()
    with torch.no_grad():
        short = model(ids, attention_mask=mask).logits
        padded = model(more_ids, attention_mask=more_mask).logits
        torch.testing.assert_close(padded, short, atol=1e-5, rtol=0)
        model.config.pool_empty_segments = True
        reference_style = model(more_ids, attention_mask=more_mask).logits
    if pooling != "first":
        assert (reference_style - padded).abs().max() > 1e-4


def test_config_pooling_chooses_the_pooler(tmp_path):
    cfg = config(pooling="attentive")
    assert cfg.segment_pooling == "attentive" and cfg.pooling == "attentive"
    model = longdoc.HATForSequenceClassification(cfg)
    assert model.pooler.pooling == "attentive" and hasattr(model.pooler, "attentive_pooling")
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "pooling" not in saved  # the authors' code takes pooling= as a model argument, not a config field
    assert longdoc.HATForSequenceClassification.from_pretrained(tmp_path, pooling="last").pooler.pooling == "last"


def test_layout_keyword_is_the_encoder_layout():
    cfg = longdoc.HATConfig(layout="S|SD|D", hidden_size=32, num_attention_heads=4)
    assert cfg.num_hidden_layers == 3 and cfg.encoder_layout["1"] == {"sentence_encoder": True,
                                                                    "document_encoder": True}
    cfg.layout = "SD|S|D"
    assert cfg.layers[0] == (True, True)
    with pytest.raises(ValueError, match="has 2 layers but this model has 3"):
        cfg.layout = "S|SD"
    with pytest.raises(ValueError, match="give the layout once"):
        longdoc.HATConfig(layout="S|SD", encoder_layout="S|SD")


def test_head_on_cached_segment_states_equals_the_whole_model():
    """longdoc's head warm-up trains the pooler and classifier on cached segment heads: on them the head
    must compute what the whole model computes."""
    ids, mask = documents()
    for pool_empty in (False, True):
        model = longdoc.HATForSequenceClassification(config(pool_empty_segments=pool_empty), pooling="max").eval()
        with torch.no_grad():
            whole = model(ids, attention_mask=mask).logits
            heads = model.hi_transformer(ids, attention_mask=mask).last_hidden_state[:, ::SIZE]
            cached = model(segment_states=heads, segment_mask=mask[:, ::SIZE].bool()).logits
        torch.testing.assert_close(cached, whole, atol=1e-6, rtol=0)
