"""A 3x3 convolution, then ReLU, then a learned per-channel bias added."""

import torch
import torch.nn as nn

batch_size = 8
in_channels = 16
out_channels = 64
height = 256
width = 256  # 9.5 GFLOP; a 132 MB output
kernel_size = 3
SIZE_CONSTANTS = ("batch_size", "in_channels", "out_channels", "height", "width")


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bias = nn.Parameter(0.1 * torch.randn(out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)) + self.bias


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
