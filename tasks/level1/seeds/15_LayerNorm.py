"""Seed for 15_LayerNorm: one program per row; a mean pass, a variance pass, then a normalizing pass."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 1024  # columns per chunk of the row walk
NUM_WARPS = 4


@triton.jit
def layer_norm_kernel(
    x_ptr, weight_ptr, bias_ptr, out_ptr, n_cols, stride_row, eps, BLOCK_SIZE: tl.constexpr
):
    row = tl.program_id(axis=0)
    x_row = x_ptr + row * stride_row
    out_row = out_ptr + row * stride_row
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        acc += tl.load(x_row + cols, mask=cols < n_cols, other=0.0)
    mean = tl.sum(acc, axis=0) / n_cols
    # the variance from centred values: E[x^2] - E[x]^2 would cancel badly for rows far from zero
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(x_row + cols, mask=cols < n_cols, other=0.0)
        centred = tl.where(cols < n_cols, x - mean, 0.0)
        acc += centred * centred
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / n_cols + eps)  # biased variance, as nn.LayerNorm
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        weight = tl.load(weight_ptr + cols, mask=mask, other=0.0)
        bias = tl.load(bias_ptr + cols, mask=mask, other=0.0)
        tl.store(out_row + cols, (x - mean) * rstd * weight + bias, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        # created and initialized exactly as the reference does, so the parameters match
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        rows = x.reshape(-1, n_cols)
        out = torch.empty_like(rows)
        grid = (rows.shape[0],)
        layer_norm_kernel[grid](
            rows, self.norm.weight, self.norm.bias, out, n_cols, rows.stride(0), self.norm.eps,
            BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS,
        )
        return out.reshape(x.shape)
