"""Product of an (M, K) matrix and a (K, 1) column vector: memory-bound, 256 MB read per call."""

import math

import torch
import torch.nn as nn

M = 8192
K = 8192
SIZE_CONSTANTS = ("M", "K")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, x)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, 1) / math.sqrt(K)]


def get_init_inputs():
    return []
