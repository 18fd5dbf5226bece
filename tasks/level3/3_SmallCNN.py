"""A small image classifier: two conv-ReLU-maxpool stages, global average pooling and a linear head."""

import torch
import torch.nn as nn

batch_size = 64
in_channels = 3
image_size = 128
channels1 = 32
channels2 = 64  # about 11.5 GFLOP per call, nearly all of it in the two convolutions
num_classes = 100
SIZE_CONSTANTS = ("batch_size", "image_size", "channels1", "channels2")


class Model(nn.Module):
    def __init__(self, in_channels: int, channels1: int, channels2: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels1, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels1, channels2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def get_inputs():
    return [torch.randn(batch_size, in_channels, image_size, image_size)]


def get_init_inputs():
    return [in_channels, channels1, channels2, num_classes]
