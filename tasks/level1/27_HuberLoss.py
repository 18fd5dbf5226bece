"""Smooth L1 (Huber) loss between predictions and targets, reduced to one scalar."""

import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 4096
dim = 8192
beta = 1.0
SIZE_CONSTANTS = ("batch_size", "dim")


class Model(nn.Module):
    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(predictions, targets, beta=self.beta)


def get_inputs():
    # differences spread across both the quadratic (|d| < beta) and the linear region
    return [torch.randn(batch_size, dim) * 2.0, torch.randn(batch_size, dim)]


def get_init_inputs():
    return [beta]
