"""SiLU (swish, x * sigmoid(x)) applied elementwise to a (batch_size, dim) matrix."""

import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 4096
dim = 8192
SIZE_CONSTANTS = ("batch_size", "dim")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
