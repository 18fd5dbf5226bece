"""Seed for 16_RMSNorm: one program per row; a sum-of-squares pass, then a scaling pass."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 1024  # columns per chunk of the row walk
NUM_WARPS = 4


@triton.jit
def rms_norm_kernel(x_ptr, weight_ptr, out_ptr, n_cols, stride_row, eps, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    x_row = x_ptr + row * stride_row
    out_row = out_ptr + row * stride_row
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(x_row + cols, mask=cols < n_cols, other=0.0)
        acc += x * x
    inv_rms = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / n_cols + eps)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        weight = tl.load(weight_ptr + cols, mask=mask, other=0.0)
        tl.store(out_row + cols, x * inv_rms * weight, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(dim))  # the reference's initialization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        rows = x.reshape(-1, n_cols)
        out = torch.empty_like(rows)
        grid = (rows.shape[0],)
        rms_norm_kernel[grid](
            rows, self.weight, out, n_cols, rows.stride(0), self.eps, BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS
        )
        return out.reshape(x.shape)
