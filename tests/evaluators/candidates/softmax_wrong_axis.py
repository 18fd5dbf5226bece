import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def softmax_columns_kernel(x_ptr, out_ptr, n_rows, n_cols, stride, BLOCK_R: tl.constexpr):
    col = tl.program_id(0)
    rows = tl.arange(0, BLOCK_R)
    mask = rows < n_rows
    x = tl.load(x_ptr + rows * stride + col, mask=mask, other=-float("inf"))
    x = x - tl.max(x, axis=0)
    num = tl.exp(x)
    tl.store(out_ptr + rows * stride + col, num / tl.sum(num, axis=0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        rows, cols = x.shape
        softmax_columns_kernel[(cols,)](x, out, rows, cols, x.stride(0), BLOCK_R=triton.next_power_of_2(rows))
        return out
