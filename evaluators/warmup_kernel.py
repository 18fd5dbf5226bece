"""A small Triton kernel a worker compiles at start-up, before any candidate exists (see compat.warm_compiler)."""

import triton
import triton.language as tl


@triton.jit
def warmup_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cols = tl.arange(0, 16)
    a = tl.load(x_ptr + rows[:, None] * 16 + cols[None, :], mask=rows[:, None] < n, other=0.0)
    b = tl.load(x_ptr + cols[:, None] * 16 + cols[None, :])
    tl.store(y_ptr + rows[:, None] * 16 + cols[None, :], tl.maximum(tl.dot(a, b), 0.0), mask=rows[:, None] < n)
