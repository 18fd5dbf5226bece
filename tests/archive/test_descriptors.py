"""Behavioural descriptors read from real Triton kernels: kernels, tl.dot, the largest tile, num_warps."""

from __future__ import annotations

from archive.descriptors import Descriptor, describe

VECTOR_ADD = """
import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask), mask=mask)


class ModelNew(torch.nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        add_kernel[(triton.cdiv(x.numel(), 1000),)](x, y, out, x.numel(), BLOCK_SIZE=1000)
        return out
"""

MATMUL = """
import torch
import triton
import triton.language as tl


@triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64}, num_stages=3, num_warps=8),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_stages=4, num_warps=4),
    ],
    key=["M", "N", "K"],
)
@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        acc += tl.dot(tl.load(a_ptr), tl.load(b_ptr))
    tl.store(c_ptr, acc)


@triton.jit
def bias_kernel(c_ptr, bias_ptr, n, BLOCK: tl.constexpr = 512):
    offsets = tl.arange(0, BLOCK)
    tl.store(c_ptr + offsets, tl.load(c_ptr + offsets) + tl.load(bias_ptr + offsets))


class ModelNew(torch.nn.Module):
    def forward(self, a, b):
        return torch.matmul(a, b).dot(b)  # torch's dot outside a kernel does not count
"""


def test_an_elementwise_kernel():
    # one kernel, no tl.dot, BLOCK_SIZE=1000 rounded up to 1024, num_warps left to Triton
    assert describe(VECTOR_ADD) == Descriptor(kernels=1, uses_dot=False, tile=1024, num_warps=0)


def test_an_autotuned_matmul_with_a_second_kernel():
    assert describe(MATMUL) == Descriptor(kernels=2, uses_dot=True, tile=512, num_warps=8)


def test_launch_options_and_assignments_count():
    source = (
        VECTOR_ADD.replace("BLOCK_SIZE=1000)", "BLOCK_SIZE=self.TILE, num_warps=2)") + "\nTILE_N = 4096 * 4\n"
    )
    assert describe(source) == Descriptor(kernels=1, uses_dot=False, tile=4096, num_warps=2)  # capped at 4096


def test_a_torch_dot_alone_is_not_a_kernel_dot():
    source = VECTOR_ADD.replace("return out", "return out.dot(y)")
    assert describe(source).uses_dot is False


def test_a_source_that_does_not_parse_lands_in_the_zero_cell():
    assert describe("def broken(:\n") == Descriptor(0, False, 0, 0)
    assert describe("x = 1") == Descriptor(0, False, 0, 0)


def test_runaway_constant_arithmetic_is_not_evaluated():
    # each level is cheap to write and would square the size of the number before it
    source = "BLOCK = " + "(" * 8 + "2 ** 64" + ") ** 64" * 8
    assert describe(source).tile == 0


def test_absurdly_deep_code_lands_in_the_zero_cell_instead_of_crashing():
    assert describe("x = " + "a." * 50_000 + "b") == Descriptor(0, False, 0, 0)
