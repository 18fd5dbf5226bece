"""A linear layer, then swish (x * sigmoid(x)), then multiplication by a constant factor."""

import torch
import torch.nn as nn

batch_size = 2048
in_features = 2048
out_features = 4096
scaling_factor = 2.0
SIZE_CONSTANTS = ("batch_size", "in_features", "out_features")


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int, scaling_factor: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scaling_factor = scaling_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        x = x * torch.sigmoid(x)
        return x * self.scaling_factor


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, scaling_factor]
