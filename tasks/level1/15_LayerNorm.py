"""LayerNorm over the last dimension of a (batch_size, dim) matrix, with learned scale and shift."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 8192
SIZE_CONSTANTS = ("batch_size", "dim")


class Model(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        # away from the (1, 0) default, so a kernel that ignores the affine parameters fails
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def get_inputs():
    return [torch.randn(batch_size, dim) * 2.0 + 0.5]


def get_init_inputs():
    return [dim]
