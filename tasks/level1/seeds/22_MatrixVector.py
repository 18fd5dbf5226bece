"""Seed for 22_MatrixVector: each program reduces BLOCK_M rows of A against the vector, BLOCK_K at a time."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

# no tl.dot here: with one output column there is nothing for tensor cores to share, and the
# kernel is bound by reading A once; BLOCK_K contiguous values per row keep the loads coalesced
BLOCK_M = 16
BLOCK_K = 256
NUM_WARPS = 4


@triton.jit
def matvec_kernel(a_ptr, x_ptr, out_ptr, M, K, stride_am, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(axis=0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for start in range(0, K, BLOCK_K):
        cols = start + tl.arange(0, BLOCK_K)
        col_mask = cols < K
        a = tl.load(a_ptr + rows[:, None] * stride_am + cols[None, :],
                    mask=row_mask[:, None] & col_mask[None, :], other=0.0)
        x = tl.load(x_ptr + cols, mask=col_mask, other=0.0)
        acc += a * x[None, :]
    tl.store(out_ptr + rows, tl.sum(acc, axis=1), mask=row_mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        A = A.contiguous()
        x = x.contiguous()  # (K, 1) is read as a flat vector of K values
        M, K = A.shape
        out = torch.empty((M, 1), device=A.device, dtype=A.dtype)
        grid = (triton.cdiv(M, BLOCK_M),)
        matvec_kernel[grid](A, x, out, M, K, A.stride(0), BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K, num_warps=NUM_WARPS)
        return out
