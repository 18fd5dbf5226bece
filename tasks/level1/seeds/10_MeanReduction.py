"""Seed for 10_MeanReduction: one program per row, summing it BLOCK_SIZE columns at a time."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

# a loop over fixed-size chunks handles any row length with a bounded register footprint
BLOCK_SIZE = 1024
NUM_WARPS = 4


@triton.jit
def row_mean_kernel(x_ptr, out_ptr, n_cols, stride_row, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    row_ptr = x_ptr + row * stride_row
    # one partial sum per lane, combined once at the end: fewer dependent adds than a running scalar
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        acc += tl.load(row_ptr + cols, mask=cols < n_cols, other=0.0)
    tl.store(out_ptr + row, tl.sum(acc, axis=0) / n_cols)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        rows = x.reshape(-1, n_cols)
        out = torch.empty(x.shape[:-1], device=x.device, dtype=x.dtype)
        grid = (rows.shape[0],)
        row_mean_kernel[grid](rows, out, n_cols, rows.stride(0), BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
