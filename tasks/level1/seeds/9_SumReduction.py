"""Seed for 9_SumReduction: a strided column reduction over tiles of BLOCK_R rows by BLOCK_C columns."""

import math

import torch
import torch.nn as nn
import triton
import triton.language as tl

# each program owns BLOCK_C neighbouring columns of one outer slice, so every row of a tile is
# one contiguous, coalesced load; BLOCK_R rows per step give each thread several loads in flight
BLOCK_R = 32
BLOCK_C = 128
NUM_WARPS = 4


@triton.jit
def sum_dim_kernel(x_ptr, out_ptr, n_reduce, n_inner, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    outer = tl.program_id(axis=0)
    cols = tl.program_id(axis=1) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_mask = cols < n_inner
    base = x_ptr + outer * n_reduce * n_inner
    acc = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for start in range(0, n_reduce, BLOCK_R):
        rows = start + tl.arange(0, BLOCK_R)
        mask = (rows[:, None] < n_reduce) & col_mask[None, :]
        tile = tl.load(base + rows[:, None] * n_inner + cols[None, :], mask=mask, other=0.0)
        acc += tl.sum(tile, axis=0)
    tl.store(out_ptr + outer * n_inner + cols, acc, mask=col_mask)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        dim = self.dim % x.dim()
        # any reduced dimension becomes the middle one of an (outer, reduce, inner) view
        n_outer = math.prod(x.shape[:dim])
        n_reduce = x.shape[dim]
        n_inner = math.prod(x.shape[dim + 1 :])
        out_shape = list(x.shape)
        out_shape[dim] = 1
        out = torch.empty(out_shape, device=x.device, dtype=x.dtype)
        grid = (n_outer, triton.cdiv(n_inner, BLOCK_C))
        sum_dim_kernel[grid](x, out, n_reduce, n_inner, BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C, num_warps=NUM_WARPS)
        return out
