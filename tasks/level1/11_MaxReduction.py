"""Maximum over the last dimension of a (batch_size, dim1, dim2) tensor (values only)."""

import torch
import torch.nn as nn

batch_size = 128
dim1 = 512
dim2 = 512
SIZE_CONSTANTS = ("batch_size", "dim1", "dim2")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return []
