"""Seed for 18_GroupNorm: one program per (sample, group), which is one contiguous block of memory."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 1024  # elements per chunk of the walk through a group
NUM_WARPS = 4


@triton.jit
def group_norm_kernel(
    x_ptr, weight_ptr, bias_ptr, out_ptr, group_size, spatial, channels_per_group, num_groups, eps,
    BLOCK_SIZE: tl.constexpr,
):
    # in NCHW, the channels of one group of one sample are neighbours: group_size contiguous values
    pid = tl.program_id(axis=0)
    group = pid % num_groups
    x_group = x_ptr + pid * group_size
    out_group = out_ptr + pid * group_size
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, group_size, BLOCK_SIZE):
        offsets = start + tl.arange(0, BLOCK_SIZE)
        acc += tl.load(x_group + offsets, mask=offsets < group_size, other=0.0)
    mean = tl.sum(acc, axis=0) / group_size
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, group_size, BLOCK_SIZE):
        offsets = start + tl.arange(0, BLOCK_SIZE)
        mask = offsets < group_size
        x = tl.load(x_group + offsets, mask=mask, other=0.0)
        centred = tl.where(mask, x - mean, 0.0)
        acc += centred * centred
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / group_size + eps)
    for start in range(0, group_size, BLOCK_SIZE):
        offsets = start + tl.arange(0, BLOCK_SIZE)
        mask = offsets < group_size
        channel = group * channels_per_group + offsets // spatial  # the affine parameters are per channel
        x = tl.load(x_group + offsets, mask=mask, other=0.0)
        weight = tl.load(weight_ptr + channel, mask=mask, other=0.0)
        bias = tl.load(bias_ptr + channel, mask=mask, other=0.0)
        tl.store(out_group + offsets, (x - mean) * rstd * weight + bias, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, num_groups: int, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, eps=1e-5)
        nn.init.normal_(self.norm.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.norm.bias, mean=0.0, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        batch, channels = x.shape[:2]
        spatial = x[0, 0].numel()
        num_groups = self.norm.num_groups
        channels_per_group = channels // num_groups
        out = torch.empty_like(x)
        grid = (batch * num_groups,)
        group_norm_kernel[grid](
            x, self.norm.weight, self.norm.bias, out, channels_per_group * spatial, spatial, channels_per_group,
            num_groups, self.norm.eps, BLOCK_SIZE=BLOCK_SIZE, num_warps=NUM_WARPS,
        )
        return out
