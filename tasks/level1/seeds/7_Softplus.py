"""Seed for 7_Softplus: a flat elementwise kernel with PyTorch's threshold of 20."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 1024  # float32 elements per program
NUM_WARPS = 4
THRESHOLD = 20.0  # F.softplus returns x itself above this, where log(1 + exp(x)) == x in float32


@triton.jit
def softplus_kernel(x_ptr, out_ptr, n_elements, threshold, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask)
    # exp never overflows where its result is used: above the threshold the other branch wins
    smooth = tl.log(1.0 + tl.exp(tl.minimum(x, threshold)))
    y = tl.where(x > threshold, x, smooth)
    tl.store(out_ptr + offsets, y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        n_elements = x.numel()
        grid = (triton.cdiv(n_elements, BLOCK_SIZE),)
        softplus_kernel[grid](x, out, n_elements, THRESHOLD, BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
