"""Inclusive cumulative sum along the rows of a (batch_size, dim) matrix of non-negative values."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 8192
SIZE_CONSTANTS = ("batch_size", "dim")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=1)


def get_inputs():
    # non-negative values make running totals grow steadily, so the tolerance relative to them
    # outgrows fp32 rounding; zero-mean values would put near-zero totals after long sums
    return [torch.rand(batch_size, dim)]


def get_init_inputs():
    return []
