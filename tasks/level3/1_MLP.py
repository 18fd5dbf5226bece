"""A three-layer perceptron: two hidden layers with ReLU, then a linear output layer."""

import torch
import torch.nn as nn

batch_size = 1024
input_size = 2048
hidden_size = 4096
output_size = 1024  # 60 GFLOP per call over three matmuls
SIZE_CONSTANTS = ("batch_size", "input_size", "hidden_size", "output_size")


class Model(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, output_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def get_inputs():
    return [torch.randn(batch_size, input_size)]


def get_init_inputs():
    return [input_size, hidden_size, output_size]
