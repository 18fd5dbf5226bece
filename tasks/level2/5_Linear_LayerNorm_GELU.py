"""A linear layer, then LayerNorm over its output features, then exact GELU."""

import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 2048
in_features = 2048
out_features = 4096
SIZE_CONSTANTS = ("batch_size", "in_features", "out_features")


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.LayerNorm(out_features)
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.norm(self.linear(x)))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
