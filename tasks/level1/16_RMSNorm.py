"""RMSNorm over the last dimension of a (batch_size, dim) matrix, with a learned scale."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 8192
eps = 1e-6
SIZE_CONSTANTS = ("batch_size", "dim")


class Model(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True) + self.eps)
        return x / rms * self.weight


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim, eps]
