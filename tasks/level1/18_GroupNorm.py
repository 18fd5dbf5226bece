"""GroupNorm of a (batch_size, channels, height, width) image batch, with learned scale and shift."""

import torch
import torch.nn as nn

batch_size = 32
channels = 64
height = 128
width = 128  # 128 MB; each of the batch_size * num_groups groups reduces 131072 values
num_groups = 8
SIZE_CONSTANTS = ("batch_size", "channels", "height", "width")


class Model(nn.Module):
    def __init__(self, num_groups: int, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, eps=1e-5)
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [num_groups, channels]
