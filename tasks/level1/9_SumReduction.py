"""Sum over the middle dimension of a (batch_size, dim1, dim2) tensor, keeping that dimension."""

import torch
import torch.nn as nn

batch_size = 128
dim1 = 512
dim2 = 512  # 128 MB read; the reduced axis is strided, which makes coalescing the kernel's problem
reduce_dim = 1
SIZE_CONSTANTS = ("batch_size", "dim1", "dim2")


class Model(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(x, dim=self.dim, keepdim=True)


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [reduce_dim]
