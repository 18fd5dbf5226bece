"""Product of two square float32 matrices, C = A @ B."""

import math

import torch
import torch.nn as nn

N = 2048  # 17 GFLOP per call
SIZE_CONSTANTS = ("N",)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, B)


def get_inputs():
    # B scaled by 1/sqrt(N) keeps C of order one, so fp32 rounding in any summation order
    # stays far inside the 1e-4 tolerance
    return [torch.randn(N, N), torch.randn(N, N) / math.sqrt(N)]


def get_init_inputs():
    return []
