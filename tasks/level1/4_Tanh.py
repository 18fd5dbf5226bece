"""Hyperbolic tangent applied elementwise to a (batch_size, dim) matrix."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 8192
SIZE_CONSTANTS = ("batch_size", "dim")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


def get_inputs():
    # scaled so that both the linear middle and the saturated tails of tanh are exercised
    return [torch.randn(batch_size, dim) * 3.0]


def get_init_inputs():
    return []
