"""Seed for 26_CrossEntropyLoss: one program per row computes log-sum-exp minus the target logit; one averages."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 1024  # classes per chunk of the row walk
FINAL_BLOCK_SIZE = 1024  # per-row losses per step of the averaging pass
NUM_WARPS = 4


@triton.jit
def row_loss_kernel(logits_ptr, targets_ptr, losses_ptr, n_classes, stride_row, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    row_ptr = logits_ptr + row * stride_row
    # the online log-sum-exp of 13_Softmax: per-lane maximum and rescaled sum in one read
    running_max = tl.full((BLOCK_SIZE,), -float("inf"), dtype=tl.float32)
    running_sum = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_classes, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(row_ptr + cols, mask=cols < n_classes, other=-float("inf"))
        new_max = tl.maximum(running_max, x)
        shift = tl.where(new_max == -float("inf"), 0.0, new_max)  # no inf - inf on padding lanes
        running_sum = running_sum * tl.exp(running_max - shift) + tl.exp(x - shift)
        running_max = new_max
    row_max = tl.max(running_max, axis=0)
    log_sum = row_max + tl.log(tl.sum(running_sum * tl.exp(running_max - row_max), axis=0))
    target = tl.load(targets_ptr + row)
    tl.store(losses_ptr + row, log_sum - tl.load(row_ptr + target))


@triton.jit
def mean_kernel(values_ptr, out_ptr, n_values, BLOCK_SIZE: tl.constexpr):
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_values, BLOCK_SIZE):
        offsets = start + tl.arange(0, BLOCK_SIZE)
        acc += tl.load(values_ptr + offsets, mask=offsets < n_values, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0) / n_values)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.contiguous()
        targets = targets.contiguous()
        batch, n_classes = logits.shape
        losses = torch.empty(batch, device=logits.device, dtype=torch.float32)
        out = torch.empty((), device=logits.device, dtype=logits.dtype)
        row_loss_kernel[(batch,)](
            logits, targets, losses, n_classes, logits.stride(0), BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS
        )
        mean_kernel[(1,)](losses, out, batch, BLOCK_SIZE=FINAL_BLOCK_SIZE, num_warps=NUM_WARPS)
        return out
