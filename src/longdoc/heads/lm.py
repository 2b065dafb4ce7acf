"""Masked-LM head: dense -> activation -> LayerNorm -> decoder (tied to the word embeddings).

RoBERTa-family heads use gelu; BERT-family heads use the config's hidden_act."""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN


class LMHead(nn.Module):
    def __init__(self, config, activation: str = "gelu"):
        super().__init__()
        self.activation = ACT2FN[activation]
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.activation(self.dense(features))))  # (B, T, vocab)
