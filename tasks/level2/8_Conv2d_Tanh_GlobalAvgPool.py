"""A 3x3 convolution, then tanh, then the mean over each channel's spatial positions."""

import torch
import torch.nn as nn

batch_size = 8
in_channels = 16
out_channels = 64
height = 256
width = 256
kernel_size = 3
SIZE_CONSTANTS = ("batch_size", "in_channels", "out_channels", "height", "width")


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv(x))
        return torch.mean(x, dim=(2, 3))


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
