"""Seed for 23_Cumsum: one program per row, a block scan per chunk plus the running total carried over."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 1024  # columns scanned at once; the carry links consecutive chunks
NUM_WARPS = 4


@triton.jit
def cumsum_kernel(x_ptr, out_ptr, n_cols, stride_row, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    x_row = x_ptr + row * stride_row
    out_row = out_ptr + row * stride_row
    carry = 0.0
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0)  # zero padding leaves the totals unchanged
        tl.store(out_row + cols, tl.cumsum(x, axis=0) + carry, mask=mask)
        carry += tl.sum(x, axis=0)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        grid = (x.shape[0],)
        cumsum_kernel[grid](x, out, x.shape[1], x.stride(0), BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
