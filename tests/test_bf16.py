"""bf16 autocast on CPU: the Longformer runs its matmuls and attention in bf16, keeps the residual stream
and LayerNorms in fp32, and its predictions stay within a stated tolerance of fp32, as close as
`transformers`' own Longformer gets under the same autocast."""

import pytest
import torch
import transformers

import longdoc
from longdoc.attention import sliding_window

CONFIG = dict(vocab_size=120, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
              attention_window=16, max_position_embeddings=120, pad_token_id=1, sep_token_id=2, bos_token_id=0,
              eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
# Stated tolerances of bf16 autocast against fp32 (bf16 keeps 8 significant bits: 0.4% per rounding).
# Measured here: 7e-4 worst and 1.3e-4 mean on the hidden states, ours and transformers' alike.
HIDDEN_MAX_ABS = 5e-3  # final hidden states (LayerNorm output, unit scale): worst element
HIDDEN_MEAN_ABS = 1e-3  # ... and on average
LOGITS_MAX_ABS = 2e-3


def batch(global_counts=(1, 3, 0), lengths=(75, 61, 40), seed=0):
    """Three rows padded to 75 tokens (not a multiple of the window or block), different numbers of
    global tokens per row (none in one)."""
    gen = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.randint(3, CONFIG["vocab_size"], (len(lengths), longest), generator=gen)
    mask = torch.zeros_like(ids)
    glob = torch.zeros_like(ids)
    for row, (length, n_global) in enumerate(zip(lengths, global_counts)):
        mask[row, :length] = 1
        ids[row, length:] = CONFIG["pad_token_id"]
        glob[row, :n_global] = 1
    return dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob)


def run(model, inputs, bf16: bool, **kwargs):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model(**inputs, **kwargs)


def real_rows(x, inputs):
    return x[inputs["attention_mask"].bool()].float()


@pytest.mark.parametrize("global_counts", [(1, 3, 0), (12, 20, 0)])  # folded and projected global rows
def test_hidden_states_match_fp32_within_tolerance(global_counts):
    torch.manual_seed(0)
    model = longdoc.LongformerModel(longdoc.LongformerConfig(**CONFIG)).eval()
    inputs = batch(global_counts)
    ref = real_rows(run(model, inputs, False).last_hidden_state, inputs)
    low = run(model, inputs, True).last_hidden_state
    assert low.dtype == torch.float32  # the residual stream was not rounded to bf16
    err = (real_rows(low, inputs) - ref).abs()
    assert err.max() <= HIDDEN_MAX_ABS and err.mean() <= HIDDEN_MEAN_ABS, (err.max(), err.mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_logits_match_fp32_and_peer_error(seed):
    """Logits within LOGITS_MAX_ABS of fp32, and hidden states on average no further from fp32 than
    transformers' Longformer (same weights) is from its own fp32 under the same autocast, give or take 1.5x."""
    torch.manual_seed(seed)
    peer = transformers.LongformerForSequenceClassification(transformers.LongformerConfig(**CONFIG)).eval()
    ours = longdoc.LongformerForSequenceClassification(longdoc.LongformerConfig(**CONFIG)).eval()
    ours.load_state_dict(peer.state_dict())
    inputs = batch(seed=seed)
    logits_error, hidden_error = {}, {}
    for name, model in (("ours", ours), ("peer", peer)):
        low, ref = (run(model, inputs, bf16, output_hidden_states=True) for bf16 in (True, False))
        logits_error[name] = (low.logits.float() - ref.logits).abs().max()
        hidden = (real_rows(low.hidden_states[-1], inputs) - real_rows(ref.hidden_states[-1], inputs)).abs()
        hidden_error[name] = hidden.mean()
    assert logits_error["ours"] <= LOGITS_MAX_ABS, logits_error
    assert hidden_error["ours"] <= 1.5 * hidden_error["peer"], hidden_error


def test_attention_kernel_runs_in_bf16_on_the_matmul_path(monkeypatch):
    """Under autocast the local attention receives bf16 projections and takes the half-precision
    matmul path (not the fused fp32-speed kernel, not an fp32 round trip)."""
    seen = []
    original = sliding_window._matmul_local

    def spy(q, k, v, geo):
        seen.append((q.dtype, k.dtype, v.dtype))
        return original(q, k, v, geo)

    monkeypatch.setattr(sliding_window, "_matmul_local", spy)
    torch.manual_seed(0)
    model = longdoc.LongformerModel(longdoc.LongformerConfig(**CONFIG)).eval()
    inputs = batch()
    run(model, inputs, True)
    assert seen == [(torch.bfloat16,) * 3] * CONFIG["num_hidden_layers"]
    seen.clear()
    run(model, inputs, False)
    assert seen == []  # fp32 keeps the exact fused path
