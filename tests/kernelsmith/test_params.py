"""Parameter tuning on real Triton sources: changed, parseable, within limits, reproducible, correct."""

from __future__ import annotations

import ast
import random

import pytest

from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, Status
from kernelsmith.params import BackendLimits, TuningError, find_knobs, tune

NVIDIA = BackendLimits.for_backend(Backend.triton_nvidia)
METAX = BackendLimits.for_backend(Backend.maca_metax)

RELU_REFERENCE = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(37, 1000)]


def get_init_inputs():
    return []
'''

# a literal tile size, repeated in the grid: tuning must move both or lose the tail
RELU_LITERAL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n  # the last block is partial
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024, num_warps=4)
        return out
'''

# tile sizes as a module constant, an attribute and a parameter default; shapes that must not move
SOFTMAX_NAMED = '''import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK_SIZE = 256  # columns per step
batch_size = 16
N = 1000


@triton.jit
def scale_kernel(x_ptr, out_ptr, n, scale, BLOCK_SIZE: tl.constexpr, VEC: tl.constexpr):
    offs = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) * scale, mask=mask)


def launch(x, out, rows_per_program=64, num_stages=2):
    n = x.numel()
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK_SIZE"]),)
    scale_kernel[grid](x, out, n, 2.0, BLOCK_SIZE=rows_per_program, VEC=4, num_stages=num_stages)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = 512
        self.warps = 8

    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        scale_kernel[(triton.cdiv(n, self.block),)](x, out, n, 2.0, BLOCK_SIZE=self.block, VEC=4, num_warps=self.warps)
        scale_kernel[(triton.cdiv(n, BLOCK_SIZE),)](x, out, n, 2.0, BLOCK_SIZE=BLOCK_SIZE, VEC=4)
        launch(x, out)
        return out
'''

MATMUL_AUTOTUNED = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}, num_warps=32, num_stages=4),
    ],
    key=["M", "N", "K"],  # re-tune when a shape changes
)
@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pass


class ModelNew(nn.Module):
    def forward(self, a, b):
        M, K = a.shape
        N = b.shape[1]
        c = torch.empty((M, N), device=a.device, dtype=a.dtype)
        grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)
        matmul_kernel[grid](a, b, c, M, N, K)
        return c
'''

SOURCES = {"relu_literal": RELU_LITERAL, "softmax_named": SOFTMAX_NAMED, "matmul_autotuned": MATMUL_AUTOTUNED}


def _within(source: str, limits: BackendLimits) -> None:
    for knob in find_knobs(source, limits):
        if knob.kind == "tile":
            assert knob.value & (knob.value - 1) == 0 and limits.min_tile <= knob.value <= limits.max_tile, knob
        else:
            allowed = getattr(limits, knob.kind)
            assert knob.value in allowed or knob.label == "Config 2 num_warps", knob  # 32 is the input's


def test_knobs_are_found_where_triton_reads_them_and_shapes_are_left_alone():
    found = {knob.label: knob.value for knob in find_knobs(SOFTMAX_NAMED, NVIDIA)}
    assert found == {
        "BLOCK_SIZE": 256,  # the module constant, also named at the second launch
        "BLOCK_SIZE (rows_per_program)": 64,  # launch()'s parameter default
        "num_stages": 2,
        "BLOCK_SIZE (self.block)": 512,
        "num_warps (self.warps)": 8,
    }
    labels = [knob.label for knob in find_knobs(MATMUL_AUTOTUNED, NVIDIA)]
    assert "Config 1 BLOCK_K" in labels and "Config 2 num_stages" in labels
    assert not any("GROUP_M" in label for label in labels)  # 8 is no tile size


@pytest.mark.parametrize("name", sorted(SOURCES))
@pytest.mark.parametrize("limits", [NVIDIA, METAX], ids=["nvidia", "metax"])
def test_tuning_changes_at_least_one_parameter_within_limits_and_parses(name, limits):
    source = SOURCES[name]
    for seed in range(25):
        tuning = tune(source, limits, random.Random(seed))
        ast.parse(tuning.source)
        assert tuning.source != source and 1 <= len(tuning.changes) <= 3
        assert all(change.old != change.new for change in tuning.changes)
        _within(tuning.source, limits)
        assert tuning.source.count("\n") == source.count("\n") and "# " in tuning.source  # layout and comments kept


def test_the_same_seed_gives_the_same_child_and_other_seeds_explore():
    children = [tune(MATMUL_AUTOTUNED, NVIDIA, random.Random(seed)).source for seed in range(10)]
    assert children == [tune(MATMUL_AUTOTUNED, NVIDIA, random.Random(seed)).source for seed in range(10)]
    assert len(set(children)) >= 6


def test_the_description_says_what_moved():
    tuning = tune(RELU_LITERAL, NVIDIA, random.Random(0))
    assert tuning.description == ", ".join(f"{c.label} {c.old}->{c.new}" for c in tuning.changes)
    for change in tuning.changes:
        label = change.label.split(" (")[0]
        assert f"{label}={change.new}" in tuning.source


def test_an_illegal_num_warps_is_brought_within_the_backends_limits():
    moves = set()
    for seed in range(40):
        tuning = tune(MATMUL_AUTOTUNED, METAX, random.Random(seed))
        moves |= {(c.old, c.new) for c in tuning.changes if c.label == "Config 2 num_warps"}
    assert moves and all(new <= 16 for _, new in moves)


def test_a_literal_tile_size_moves_with_the_same_number_in_the_grid():
    for seed in range(30):
        tuning = tune(RELU_LITERAL, NVIDIA, random.Random(seed))
        moved = [c for c in tuning.changes if c.label == "BLOCK"]
        if moved:
            new = moved[0].new
            assert f"relu_kernel[(triton.cdiv(n, {new}),)](x, out, n, BLOCK={new}," in tuning.source
            return
    pytest.fail("no seed moved BLOCK")


def test_a_source_without_tunable_parameters_says_so():
    plain = RELU_LITERAL.replace("BLOCK=1024, num_warps=4", "BLOCK=triton.next_power_of_2(n)")
    with pytest.raises(TuningError, match="no tunable parameter found"):
        tune(plain, NVIDIA, random.Random(0))


def test_tuned_children_of_a_correct_kernel_stay_correct_under_the_interpreter(interpret_judge):
    """The grid tie is what keeps a smaller block correct: without it half the output is missed."""
    smaller = next(
        t for t in (tune(RELU_LITERAL, NVIDIA, random.Random(seed)) for seed in range(50))
        if any(c.label == "BLOCK" and c.new < c.old for c in t.changes)
    )
    request = EvalRequest(task_name="relu", reference_source=RELU_REFERENCE, candidate_source=smaller.source,
                          backend=Backend.triton_interpret, correctness=CorrectnessSettings(trials=2))
    result = interpret_judge.evaluate(request)
    assert result.status == Status.ok, (smaller.description, result.summary())
