"""Seed for 25_MSELoss: per-block partial sums of squared errors, then one program adds them up."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

# two launches instead of atomics: the sum's order is fixed, so repeated calls agree bit for bit
BLOCK_SIZE = 1024  # elements per program of the first pass
FINAL_BLOCK_SIZE = 1024  # partial sums per step of the second pass
NUM_WARPS = 4


@triton.jit
def squared_error_partials_kernel(pred_ptr, target_ptr, partial_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    pred = tl.load(pred_ptr + offsets, mask=mask, other=0.0)
    target = tl.load(target_ptr + offsets, mask=mask, other=0.0)
    diff = pred - target
    tl.store(partial_ptr + pid, tl.sum(diff * diff, axis=0))


@triton.jit
def mean_kernel(partial_ptr, out_ptr, n_partials, n_elements, BLOCK_SIZE: tl.constexpr):
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_partials, BLOCK_SIZE):
        offsets = start + tl.arange(0, BLOCK_SIZE)
        acc += tl.load(partial_ptr + offsets, mask=offsets < n_partials, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0) / n_elements)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        predictions = predictions.contiguous()
        targets = targets.contiguous()
        n_elements = predictions.numel()
        n_partials = triton.cdiv(n_elements, BLOCK_SIZE)
        partials = torch.empty(n_partials, device=predictions.device, dtype=torch.float32)
        out = torch.empty((), device=predictions.device, dtype=predictions.dtype)  # a 0-d scalar, as F.mse_loss
        squared_error_partials_kernel[(n_partials,)](
            predictions, targets, partials, n_elements, BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS
        )
        mean_kernel[(1,)](partials, out, n_partials, n_elements, BLOCK_SIZE=FINAL_BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
