"""Product of two square float16 matrices, C = A @ B, accumulated in float32 and returned in float16."""

import torch
import torch.nn as nn

N = 4096  # 137 GFLOP per call: tensor-core territory
SIZE_CONSTANTS = ("N",)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(N, N, dtype=torch.float16), torch.randn(N, N, dtype=torch.float16)]


def get_init_inputs():
    return []
