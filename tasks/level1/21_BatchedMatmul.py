"""Batched matrix product of (batch_size, M, K) and (batch_size, K, N) tensors."""

import math

import torch
import torch.nn as nn

batch_size = 64
M = 512
K = 256
N = 512  # 8.6 GFLOP per call
SIZE_CONSTANTS = ("batch_size", "M", "K", "N")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.bmm(A, B)


def get_inputs():
    return [torch.randn(batch_size, M, K), torch.randn(batch_size, K, N) / math.sqrt(K)]


def get_init_inputs():
    return []
