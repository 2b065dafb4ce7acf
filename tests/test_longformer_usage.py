"""Clear errors on bad input, and use through `transformers.pipeline`."""

import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

import longdoc

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            attention_window=8, max_position_embeddings=34, pad_token_id=1, sep_token_id=2)


def model(cls=longdoc.LongformerModel, **overrides):
    torch.manual_seed(0)
    return cls(longdoc.LongformerConfig(**{**TINY, **overrides})).eval()


@pytest.mark.parametrize("window,match", [
    (7, "positive even"), (0, "positive even"), (-4, "positive even"), ([8, 8, 8], "one window per layer"),
    ([8, 5], "positive even"),
])
def test_bad_windows_fail_at_config_time(window, match):
    with pytest.raises(ValueError, match=match):
        longdoc.LongformerConfig(**{**TINY, "attention_window": window})


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        longdoc.LongformerConfig(**{**TINY, "hidden_size": 30})


def test_input_longer_than_positions_says_how_to_convert():
    m = model()
    assert m.config.max_tokens == 32
    m(torch.randint(3, 100, (1, 32)))  # the longest input that fits
    with pytest.raises(ValueError, match=r"longdoc convert --to longformer .* --max-length 40"):
        m(torch.randint(3, 100, (1, 40)))


@pytest.mark.parametrize("name,shape", [("attention_mask", (2, 9)), ("global_attention_mask", (1, 10)),
                                        ("token_type_ids", (2, 10, 1))])
def test_mask_shape_mismatch(name, shape):
    with pytest.raises(ValueError, match=f"{name} has shape"):
        model()(torch.randint(3, 100, (2, 10)), **{name: torch.ones(shape, dtype=torch.long)})


@pytest.mark.parametrize("bad", [100, -1])
def test_token_ids_outside_vocabulary(bad):
    ids = torch.randint(3, 100, (2, 10))
    ids[1, 4] = bad
    with pytest.raises(ValueError, match=f"token id {bad} is outside"):
        model()(ids)


def test_question_answering_needs_separators():
    ids = torch.randint(3, 100, (2, 12))
    ids[0, 5] = 2  # only the first row has a separator
    with pytest.raises(ValueError, match=r"rows \[1\] have no separator"):
        model(longdoc.LongformerForQuestionAnswering, num_labels=2)(ids)
    # an explicit global mask is always accepted
    out = model(longdoc.LongformerForQuestionAnswering, num_labels=2)(ids, global_attention_mask=torch.zeros_like(ids))
    assert out.start_logits.shape == (2, 12)


def test_bert_style_multiple_choice_globals_start_after_single_separator():
    from longdoc.models.longformer_heads import after_separator_global_mask
    ids = torch.tensor([[0, 5, 6, 2, 7, 8, 2], [0, 5, 2, 2, 7, 8, 2]])  # [SEP] once vs </s></s>
    assert after_separator_global_mask(ids, 2).tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1]]


def test_only_one_of_ids_and_embeddings():
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model()()


def test_fill_mask_pipeline_runs_on_our_model():
    words = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + [f"w{i}" for i in range(95)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>",
    )
    m = model(longdoc.LongformerForMaskedLM)
    fill = transformers.pipeline("fill-mask", model=m, tokenizer=tokenizer)
    preds = fill("w1 w2 <mask> w4 " + "w9 " * 20, top_k=3)
    assert len(preds) == 3 and all(p["token_str"] in words for p in preds)
    ids = tokenizer("w1 w2 <mask> w4 " + "w9 " * 20, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = m(ids).logits[0, int((ids[0] == tokenizer.mask_token_id).nonzero())]
    assert preds[0]["token"] == int(logits.argmax())  # the pipeline reads our logits


@pytest.mark.parametrize("n_global", [1, 12])  # folded global rows (H * g < C) and projected ones
def test_bf16_autocast_runs_and_stays_close_to_fp32(n_global):
    m = model(longdoc.LongformerForSequenceClassification, num_labels=2)
    ids = torch.randint(3, 100, (2, 30))
    glob = torch.zeros_like(ids)
    glob[:, :n_global] = 1
    with torch.no_grad():
        ref = m(ids, global_attention_mask=glob).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(ids, global_attention_mask=glob).logits
    torch.testing.assert_close(low.float(), ref, atol=5e-2, rtol=0)
