"""Seed for 8_Conv2d_Tanh_GlobalAvgPool: an implicit-GEMM convolution with tanh fused, then a spatial-mean pass."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_P = 64  # output pixels per program
BLOCK_CO = 64  # output channels per program
BLOCK_K = 32  # (in_channel, kh, kw) taps per step
NUM_WARPS = 4
NUM_STAGES = 2
MEAN_BLOCK_SIZE = 1024  # pixels per step of the spatial-mean pass


@triton.jit
def conv2d_tanh_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr,
    n_pixels, C_in, H, W, C_out, OH, OW,
    KH: tl.constexpr, KW: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_p = tl.program_id(axis=0) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_co = tl.program_id(axis=1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    p_mask = offs_p < n_pixels
    co_mask = offs_co < C_out
    n = offs_p // (OH * OW)
    oh = (offs_p // OW) % OH
    ow = offs_p % OW
    n_taps = C_in * KH * KW
    acc = tl.zeros((BLOCK_P, BLOCK_CO), dtype=tl.float32)
    for k in range(0, n_taps, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        k_mask = offs_k < n_taps
        ci = offs_k // (KH * KW)
        kh = (offs_k // KW) % KH
        kw = offs_k % KW
        x_rows = (n[:, None] * C_in + ci[None, :]) * H + oh[:, None] + kh[None, :]
        x_offsets = x_rows * W + ow[:, None] + kw[None, :]
        patch = tl.load(x_ptr + x_offsets, mask=p_mask[:, None] & k_mask[None, :], other=0.0)
        w_offsets = offs_co[None, :] * n_taps + offs_k[:, None]
        w = tl.load(w_ptr + w_offsets, mask=k_mask[:, None] & co_mask[None, :], other=0.0)
        acc += tl.dot(patch, w, input_precision="ieee")  # full float32: tf32 would miss the tolerance
    bias = tl.load(b_ptr + offs_co, mask=co_mask, other=0.0)
    y = acc + bias[None, :]
    e = tl.exp(-2.0 * tl.abs(y))  # tanh from one exponential that cannot overflow
    magnitude = (1.0 - e) / (1.0 + e)
    y = tl.where(y < 0, -magnitude, magnitude)
    out_offsets = ((n[:, None] * C_out + offs_co[None, :]) * OH + oh[:, None]) * OW + ow[:, None]
    tl.store(out_ptr + out_offsets, y, mask=p_mask[:, None] & co_mask[None, :])


@triton.jit
def spatial_mean_kernel(x_ptr, out_ptr, n_spatial, BLOCK_SIZE: tl.constexpr):
    # one (sample, channel) plane is n_spatial contiguous values
    plane = tl.program_id(axis=0)
    acc = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for start in range(0, n_spatial, BLOCK_SIZE):
        offs = start + tl.arange(0, BLOCK_SIZE)
        acc += tl.load(x_ptr + plane * n_spatial + offs, mask=offs < n_spatial, other=0.0)
    tl.store(out_ptr + plane, tl.sum(acc, axis=0) / n_spatial)


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        weight = self.conv.weight.contiguous()
        batch, c_in, height, width = x.shape
        c_out, _, kh, kw = weight.shape
        oh, ow = height - kh + 1, width - kw + 1
        activated = torch.empty((batch, c_out, oh, ow), device=x.device, dtype=x.dtype)
        n_pixels = batch * oh * ow
        grid = (triton.cdiv(n_pixels, BLOCK_P), triton.cdiv(c_out, BLOCK_CO))
        conv2d_tanh_kernel[grid](
            x, weight, self.conv.bias, activated, n_pixels, c_in, height, width, c_out, oh, ow,
            KH=kh, KW=kw, BLOCK_P=BLOCK_P, BLOCK_CO=BLOCK_CO, BLOCK_K=BLOCK_K,
            num_warps=NUM_WARPS, num_stages=NUM_STAGES,
        )
        out = torch.empty((batch, c_out), device=x.device, dtype=x.dtype)
        spatial_mean_kernel[(batch * c_out,)](
            activated, out, oh * ow, BLOCK_SIZE=MEAN_BLOCK_SIZE, num_warps=NUM_WARPS
        )
        return out
