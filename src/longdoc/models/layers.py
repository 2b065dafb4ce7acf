"""The encoder layer every family shares: self-attention block, feed-forward block, post-LN.

Weight names follow the BERT/RoBERTa layout (`attention.self`, `attention.output.dense`,
`intermediate.dense`, `output.dense`...), which is also the layout of the published
Longformer and HAT checkpoints. A family plugs in its own self-attention module; the module
takes (hidden_states, **attention_inputs) and returns (context, *extras).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer


def add_residual(out: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """out + residual, in place where the dtypes agree. Under autocast `out` is a bf16 matmul output
    and the residual fp32: the sum is then fp32, so the residual stream and the LayerNorm after it stay
    fp32 as in `transformers` (rounding the stream to bf16 in place made the final hidden states 25x
    further from fp32)."""
    return out.add_(residual) if out.dtype == residual.dtype else out + residual


def autocast_input(x: torch.Tensor) -> torch.Tensor:
    """x in autocast's dtype when autocast is on for its device: cast once for the several projections
    that read it (autocast would cast it once per projection)."""
    device = x.device.type
    if x.is_floating_point() and torch.is_autocast_enabled(device):
        return x.to(torch.get_autocast_dtype(device))
    return x


class SelfOutput(nn.Module):
    """Projection after attention, dropout, residual, LayerNorm."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(add_residual(out, residual))  # in place: one activation-sized allocation less


class HeadProjections(nn.Module):
    """The query/key/value projections of a self-attention, split into heads. A family's attention
    module subclasses it and runs its own kernel on `project(hidden_states)`."""

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.attention_probs_dropout_prob
        self.query, self.key, self.value = (nn.Linear(config.hidden_size, config.hidden_size) for _ in range(3))

    def project(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q, k, v, each (B, H, T, D)."""
        batch, length = hidden_states.shape[:2]
        hidden_states = autocast_input(hidden_states)
        return tuple(p(hidden_states).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
                     for p in (self.query, self.key, self.value))


class AttentionBlock(nn.Module):
    def __init__(self, config, self_attention: nn.Module):
        super().__init__()
        self.self = self_attention
        self.output = SelfOutput(config)

    def forward(self, hidden_states, **attention_inputs):
        context, *extras = self.self(hidden_states, **attention_inputs)
        return (self.output(context, hidden_states), *extras)


class Intermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]
        self.exact_gelu = config.hidden_act == "gelu"
        # BART-family layers drop out after the activation too; BERT-family configs have no such field
        self.activation_dropout = nn.Dropout(getattr(config, "activation_dropout", 0.0) or 0.0)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = self.dense(hidden_states)
        if self.exact_gelu and not (torch.is_grad_enabled() and out.requires_grad):
            # inference: gelu in place, no second FFN-sized tensor (at 16k tokens a fresh 200 MB per layer)
            return self.activation_dropout(torch.ops.aten.gelu_(out))
        return self.activation_dropout(self.intermediate_act_fn(out))


class Output(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(add_residual(out, residual))  # in place: one activation-sized allocation less


class EncoderLayer(GradientCheckpointingLayer):
    """One transformer layer around a pluggable self-attention module."""

    def __init__(self, config, self_attention: nn.Module):
        super().__init__()
        self.attention = AttentionBlock(config, self_attention)
        self.intermediate = Intermediate(config)
        self.output = Output(config)

    def forward(self, hidden_states, **attention_inputs):
        attended, *extras = self.attention(hidden_states, **attention_inputs)
        return (self.output(self.intermediate(attended), attended), *extras)


class Pooler(nn.Module):
    """dense -> tanh on the first token (BERT's pooler)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


def roberta_position_ids(input_ids: torch.Tensor | None, shape, padding_idx: int, device) -> torch.Tensor:
    """RoBERTa-style positions: real tokens count from padding_idx + 1, padding keeps padding_idx;
    without input_ids (inputs_embeds given) every token is real."""
    if input_ids is not None:
        real = input_ids.ne(padding_idx).long()
        return torch.cumsum(real, dim=1) * real + padding_idx  # (B, T)
    return torch.arange(padding_idx + 1, shape[1] + padding_idx + 1, device=device).expand(shape)


def input_shape(input_ids, inputs_embeds, masks: dict, layout: str = "batch, tokens") -> tuple[int, int]:
    """The (batch, tokens) shape of an encoder's input, after checking that exactly one of input_ids and
    inputs_embeds is given and that every given mask (name -> tensor or None) has that shape."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids or inputs_embeds")
    shape = tuple(input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1])
    if len(shape) != 2:
        raise ValueError(f"inputs must be ({layout}), got shape {shape}")
    for name, mask in masks.items():
        if mask is not None and tuple(mask.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(mask.shape)} but the input has shape {shape} ({layout})")
    return shape
