"""Attention scores: queries times transposed keys, scaled by 1/sqrt(head_dim), softmax over keys."""

import math

import torch
import torch.nn as nn

batch_size = 8  # batch times heads
seq_len = 2048
head_dim = 64  # a (8, 2048, 2048) float32 result: 128 MB
SIZE_CONSTANTS = ("batch_size", "seq_len", "head_dim")


class Model(nn.Module):
    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = 1.0 / math.sqrt(head_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = torch.bmm(q, k.transpose(1, 2)) * self.scale
        return torch.softmax(scores, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, seq_len, head_dim), torch.randn(batch_size, seq_len, head_dim)]


def get_init_inputs():
    return [head_dim]
