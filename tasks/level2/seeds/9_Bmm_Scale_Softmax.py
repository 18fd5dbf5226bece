"""Seed for 9_Bmm_Scale_Softmax: a batched matmul against transposed keys with the scale fused, then row softmax."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_M = 64
BLOCK_N = 64
BLOCK_K = 32
NUM_WARPS = 4
NUM_STAGES = 3
SOFTMAX_BLOCK_SIZE = 1024  # a row's softmax needs all its scores: a second pass over them


@triton.jit
def scores_kernel(
    q_ptr, k_ptr, out_ptr, M, N, D, scale,
    stride_qb, stride_qm, stride_qd, stride_kb, stride_kn, stride_kd, stride_ob, stride_om, stride_on,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(axis=0)
    pid_n = tl.program_id(axis=1)
    batch = tl.program_id(axis=2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_K)
    q_ptrs = q_ptr + batch * stride_qb + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    # K.T[d, n] is K[n, d]: the transpose is only a choice of strides
    k_ptrs = k_ptr + batch * stride_kb + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for d in range(0, D, BLOCK_K):
        d_mask = (d + offs_d) < D
        q = tl.load(q_ptrs, mask=(offs_m[:, None] < M) & d_mask[None, :], other=0.0)
        k = tl.load(k_ptrs, mask=d_mask[:, None] & (offs_n[None, :] < N), other=0.0)
        acc += tl.dot(q, k, input_precision="ieee")  # full float32: tf32 would miss the tolerance
        q_ptrs += BLOCK_K * stride_qd
        k_ptrs += BLOCK_K * stride_kd
    out_ptrs = out_ptr + batch * stride_ob + offs_m[:, None] * stride_om + offs_n[None, :] * stride_on
    tl.store(out_ptrs, acc * scale, mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def softmax_kernel(x_ptr, out_ptr, n_cols, stride_row, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    x_row = x_ptr + row * stride_row
    out_row = out_ptr + row * stride_row
    running_max = tl.full((BLOCK_SIZE,), -float("inf"), dtype=tl.float32)
    running_sum = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(x_row + cols, mask=cols < n_cols, other=-float("inf"))
        new_max = tl.maximum(running_max, x)
        shift = tl.where(new_max == -float("inf"), 0.0, new_max)  # no inf - inf on padding lanes
        running_sum = running_sum * tl.exp(running_max - shift) + tl.exp(x - shift)
        running_max = new_max
    row_max = tl.max(running_max, axis=0)
    row_sum = tl.sum(running_sum * tl.exp(running_max - row_max), axis=0)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=-float("inf"))
        tl.store(out_row + cols, tl.exp(x - row_max) / row_sum, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = 1.0 / head_dim**0.5

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        batch, M, D = q.shape
        N = k.shape[1]
        scores = torch.empty((batch, M, N), device=q.device, dtype=q.dtype)
        grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), batch)
        scores_kernel[grid](
            q, k, scores, M, N, D, self.scale,
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            scores.stride(0), scores.stride(1), scores.stride(2),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=NUM_WARPS, num_stages=NUM_STAGES,
        )
        rows = scores.view(batch * M, N)
        # in place: each program reads its whole row before writing any of it
        softmax_kernel[(batch * M,)](rows, rows, N, rows.stride(0), BLOCK_SIZE=SOFTMAX_BLOCK_SIZE, num_warps=NUM_WARPS)
        return scores
