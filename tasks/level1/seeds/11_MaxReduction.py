"""Seed for 11_MaxReduction: one program per row, a running per-lane maximum over BLOCK_SIZE chunks."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 512  # the rows are 512 long at full size: one chunk per row
NUM_WARPS = 4


@triton.jit
def row_max_kernel(x_ptr, out_ptr, n_cols, stride_row, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    row_ptr = x_ptr + row * stride_row
    # -inf is the identity of max, so padding lanes never win
    best = tl.full((BLOCK_SIZE,), -float("inf"), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(row_ptr + cols, mask=cols < n_cols, other=-float("inf"))
        best = tl.maximum(best, x)
    tl.store(out_ptr + row, tl.max(best, axis=0))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        rows = x.reshape(-1, n_cols)
        out = torch.empty(x.shape[:-1], device=x.device, dtype=x.dtype)
        grid = (rows.shape[0],)
        row_max_kernel[grid](rows, out, n_cols, rows.stride(0), BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
