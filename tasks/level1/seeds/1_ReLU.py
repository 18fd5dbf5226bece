"""Seed for 1_ReLU: a flat elementwise kernel, one program per BLOCK_SIZE contiguous elements."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

# 1024 float32 elements per program: 8 per thread with 4 warps, enough for wide loads and
# few enough programs' worth of registers that every SM holds several programs at once
BLOCK_SIZE = 1024
NUM_WARPS = 4


@triton.jit
def relu_kernel(x_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements  # the last program runs past the end unless BLOCK_SIZE divides n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()  # the kernel indexes memory as one flat array
        out = torch.empty_like(x)
        n_elements = x.numel()
        grid = (triton.cdiv(n_elements, BLOCK_SIZE),)
        relu_kernel[grid](x, out, n_elements, BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
