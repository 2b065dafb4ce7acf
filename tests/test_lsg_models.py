"""LSG models beyond parity: gradient checkpointing, training, what the outputs hold, and bad input."""

import pytest
import torch

import longdoc

TINY = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=128, block_size=8, sparse_block_size=8, sparsity_factor=2, num_global_tokens=2,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.1)


def _batch(length=45, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    return ids, mask


@pytest.mark.parametrize("kind", ["norm", "pooling", "bos_pooling", "lsh"])
def test_gradient_checkpointing_gives_the_same_gradients(kind):
    torch.manual_seed(0)
    model = longdoc.LSGBertForSequenceClassification(longdoc.LSGBertConfig(**TINY, sparsity_type=kind, num_labels=3))
    ids, mask = _batch()
    labels = torch.tensor([0, 2])

    def grads(checkpointing):
        model.zero_grad()
        if checkpointing:
            model.activation_checkpointing_enable()
        else:
            model.activation_checkpointing_disable()
        model.train()
        torch.manual_seed(1)  # lsh draws its projections: the same draws with and without recomputation
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = grads(False), grads(True)
    if kind == "lsh":  # recomputation draws new projections: only check that gradients flow everywhere
        assert plain.keys() == checkpointed.keys()
        return
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_bart_trains_with_gradient_checkpointing():
    torch.manual_seed(0)
    config = longdoc.LSGBartConfig(vocab_size=60, d_model=32, encoder_layers=2, decoder_layers=1,
                                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37,
                                   decoder_ffn_dim=37, max_position_embeddings=128, block_size=8,
                                   sparse_block_size=8, dropout=0.0, attention_dropout=0.0)
    model = longdoc.LSGBartForConditionalGeneration(config)
    model.activation_checkpointing_enable()
    model.train()
    ids, mask = _batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    labels = ids[:, :6].contiguous()
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert model.model.encoder.global_embeddings.weight.grad is None  # zeroed by the optimizer step
    assert model.model.encoder.layers[0].attention.self.query.weight.requires_grad


def test_bart_pads_the_ids_before_the_embeddings():
    """Adaptive padding as lsg-converter's: padded ids (pad_token_id) are embedded with their positions, so
    bos_pooling's padding windows see their keys; past the position table (lsg-converter fails there) the
    padded states are zeros."""
    torch.manual_seed(0)
    config = longdoc.LSGBartConfig(vocab_size=60, d_model=32, encoder_layers=1, decoder_layers=1,
                                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37,
                                   decoder_ffn_dim=37, max_position_embeddings=60, block_size=8, sparse_block_size=8,
                                   pad_token_id=1, sparsity_type="bos_pooling")
    encoder = longdoc.LSGBartModel(config).eval().encoder
    ids = torch.randint(5, 60, (2, 45))
    padded = encoder(input_ids=ids, output_hidden_states=True).hidden_states[0]  # (B, 1 global + 48, C)
    explicit = encoder(input_ids=torch.cat([ids, torch.ones(2, 3, dtype=torch.long)], dim=1),
                       output_hidden_states=True).hidden_states[0]
    torch.testing.assert_close(padded, explicit)
    past_table = encoder(input_ids=torch.randint(5, 60, (2, 57)), output_hidden_states=True)  # padded to 64 > 60
    assert past_table.hidden_states[0].shape == (2, 1 + 64, 32)
    assert bool((past_table.hidden_states[0][:, 1 + 57:] == 0).all())
    assert bool(past_table.last_hidden_state.isfinite().all())


def test_pool_with_global_puts_global_zero_on_the_first_token():
    torch.manual_seed(0)
    model = longdoc.LSGBertModel(longdoc.LSGBertConfig(**TINY)).eval()
    ids, mask = _batch()
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 45, 32)
    last = out.hidden_states[-1]  # (B, G + padded T, C): globals first, padded to 48
    assert last.shape == (2, 2 + 48, 32)
    torch.testing.assert_close(out.last_hidden_state[:, 0], last[:, 0])
    torch.testing.assert_close(out.last_hidden_state[:, 1:], last[:, 3:2 + 45])


def test_bad_inputs_are_explained():
    model = longdoc.LSGBertModel(longdoc.LSGBertConfig(**TINY)).eval()
    ids, mask = _batch()
    with pytest.raises(ValueError, match="head_mask is not supported"):
        model(input_ids=ids, head_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 40\)"):
        model(input_ids=ids, attention_mask=mask[:, :40])
    with pytest.raises(ValueError, match="longer than this model's 128 positions"):
        model(input_ids=torch.randint(5, 60, (1, 130)))
    strict = longdoc.LSGBertModel(longdoc.LSGBertConfig(**{**TINY, "adaptive": False})).eval()
    with pytest.raises(ValueError, match="not a multiple of block_size"):
        strict(input_ids=ids)
    with pytest.raises(ValueError, match="mask_first_token=True needs pool_with_global=True"):
        longdoc.LSGBertConfig(**TINY, mask_first_token=True, pool_with_global=False)
    with pytest.raises(ValueError, match="choose one of"):
        longdoc.LSGRobertaConfig(**TINY, sparsity_type="random")
