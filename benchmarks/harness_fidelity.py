"""Timing fidelity and overhead of the evaluator on a GPU.

    python3 benchmarks/harness_fidelity.py [--repeats 10] [--kernelbench] [--out DIR]

For kernels of different lengths: the candidate median over repeated evaluations (its spread),
the ratio to triton.testing.do_bench on the same kernel and inputs, and the evaluator's overhead
per candidate (wall time outside the timed repetitions). With --kernelbench, also the end-to-end
time of one evaluation at KernelBench level-1 ReLU size (4096 x 393216 fp32, 5 correctness
trials, 100 timed) and of a level-2 matmul-subtract-multiply-ReLU, cold (reference computed)
and warm (reference cached).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from evaluators.compat import do_bench  # noqa: E402
from evaluators.judge import Judge  # noqa: E402
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, TimingSettings  # noqa: E402

RELU_TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


ROWS, COLS = {rows}, {cols}


def get_inputs():
    return [torch.randn(ROWS, COLS)]


def get_init_inputs():
    return []
'''

RELU_KERNEL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK_SIZE=4096, num_warps=8)
        return out
'''

MATMUL_TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, a, b):
        return a @ b


N = {n}


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return []
'''

MATMUL_KERNEL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + rm[:, None] * K + (k + rk)[None, :], mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k + rk)[:, None] * N + rn[None, :], mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(a, b, input_precision="ieee")
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


class ModelNew(nn.Module):
    def forward(self, a, b):
        M, K = a.shape
        N = b.shape[1]
        c = torch.empty((M, N), device=a.device, dtype=a.dtype)
        matmul_kernel[(triton.cdiv(M, 64), triton.cdiv(N, 64))](a, b, c, M, N, K, BLOCK_M=64, BLOCK_N=64, BLOCK_K=32,
                                                               num_warps=4, num_stages=3)
        return c
'''

FUSED_TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_features, out_features, subtract_value, multiply_value):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.subtract_value = subtract_value
        self.multiply_value = multiply_value

    def forward(self, x):
        x = self.linear(x)
        x = x - self.subtract_value
        x = x * self.multiply_value
        return torch.relu(x)


batch_size, in_features, out_features = 1024, 8192, 8192
subtract_value, multiply_value = 2.0, 1.5


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, subtract_value, multiply_value]
'''

FUSED_KERNEL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def linear_sub_mul_relu(x_ptr, w_ptr, b_ptr, out_ptr, M, N, K, sub, mul,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        x = tl.load(x_ptr + rm[:, None] * K + (k + rk)[None, :], mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        # weight is (N, K): read it transposed
        w = tl.load(w_ptr + rn[None, :] * K + (k + rk)[:, None], mask=(rn[None, :] < N) & ((k + rk)[:, None] < K), other=0.0)
        acc += tl.dot(x, w, input_precision="ieee")
    acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0)[None, :]
    acc = tl.maximum((acc - sub) * mul, 0.0)
    tl.store(out_ptr + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features, subtract_value, multiply_value):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.subtract_value = subtract_value
        self.multiply_value = multiply_value

    def forward(self, x):
        M, K = x.shape
        N = self.linear.weight.shape[0]
        out = torch.empty((M, N), device=x.device, dtype=x.dtype)
        grid = (triton.cdiv(M, 64), triton.cdiv(N, 64))
        linear_sub_mul_relu[grid](x, self.linear.weight, self.linear.bias, out, M, N, K,
                                  self.subtract_value, self.multiply_value,
                                  BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3)
        return out
'''

CASES = {
    "relu 2^22 fp32": (RELU_TASK.format(rows=1024, cols=4096), RELU_KERNEL),
    "relu 2^26 fp32": (RELU_TASK.format(rows=16384, cols=4096), RELU_KERNEL),
    "relu 2^28 fp32": (RELU_TASK.format(rows=65536, cols=4096), RELU_KERNEL),
    "matmul 2048 fp32": (MATMUL_TASK.format(n=2048), MATMUL_KERNEL),
    "matmul 4096 fp32": (MATMUL_TASK.format(n=4096), MATMUL_KERNEL),
}


def load_module(source: str, name: str):
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_do_bench(task_source: str, kernel_source: str) -> float:
    """do_bench on the same kernel and (seeded) inputs, in this process."""
    task = load_module(task_source, "fidelity_task")
    kernel = load_module(kernel_source, "fidelity_kernel")
    torch.manual_seed(0)
    model = kernel.ModelNew(*task.get_init_inputs()).cuda()
    with torch.device("cuda"):
        inputs = task.get_inputs()
    with torch.no_grad():
        return do_bench(lambda: model(*inputs), warmup_ms=100, rep_ms=500)


def request(name: str, task: str, kernel: str, trials: int = 3) -> EvalRequest:
    return EvalRequest(
        task_name=name, reference_source=task, candidate_source=kernel, backend=Backend.triton_nvidia,
        correctness=CorrectnessSettings(trials=trials), timing=TimingSettings(warmup=10, repetitions=100),
    )


def fidelity(repeats: int) -> list[dict]:
    rows = []
    judge = Judge.for_backend(Backend.triton_nvidia)
    for name, (task, kernel) in CASES.items():
        medians, overheads, walls, spreads = [], [], [], []
        for _ in range(repeats):
            result = judge.evaluate(request(name, task, kernel))
            if result.status.value != "ok":
                print(f"{name}: {result.status.value}: {result.message}", flush=True)
                break
            timing = result.timing
            medians.append(timing.median_ms)
            spreads.append(timing.spread)
            walls.append(result.duration_s)
            overheads.append(result.duration_s - timing.mean_ms * 110 / 1000)
            phases = result.phase_s
        if not medians:
            continue
        bench = reference_do_bench(task, kernel)
        center = statistics.median(medians)
        row = {
            "kernel": name,
            "median_ms": center,
            "spread_across_evals": (max(medians) - min(medians)) / center,
            "spread_within_eval": statistics.median(spreads),
            "do_bench_ms": bench,
            "ratio_to_do_bench": center / bench,
            "overhead_s": statistics.median(overheads[1:] or overheads),
            "first_eval_s": walls[0],
            "warm_eval_s": statistics.median(walls[1:] or walls),
            "evals": len(medians),
            "phases_s": phases,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def kernelbench_sized(warm: int, only: list[str] | None = None, again: int = 1) -> list[dict]:
    """Cold: a fresh judge and worker. Warm: reference cached and, with --warm, a worker started ahead."""
    rows = []
    cases = {
        "level1 ReLU 4096x393216": (RELU_TASK.format(rows=4096, cols=393216), RELU_KERNEL),
        "level2 matmul-sub-mul-relu 1024x8192x8192": (FUSED_TASK, FUSED_KERNEL),
    }
    for name, (task, kernel) in cases.items():
        if only and not any(o in name for o in only):
            continue
        judge = Judge.for_backend(Backend.triton_nvidia)  # a fresh judge: the first evaluation is cold
        if warm:
            from evaluators.warm import WarmPool

            judge.workers = WarmPool(size=warm)
            judge.workers.prepare(judge.spec)
            judge.workers.wait_ready(judge.spec, warm, 120)
        for phase in ("cold", *["warm"] * again):
            if warm and phase == "warm":
                judge.workers.wait_ready(judge.spec, warm, 120)  # as a search's next candidate finds it
            started = time.perf_counter()
            result = judge.evaluate(request(name, task, kernel, trials=5))
            wall = time.perf_counter() - started
            row = {"case": name, "phase": phase, "warm_pool": warm, "status": result.status.value, "wall_s": wall,
                   "speedup": result.speedup, "message": result.message[:200], "phases_s": result.phase_s}
            rows.append(row)
            print(json.dumps(row), flush=True)
        del judge
        torch.cuda.empty_cache()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--kernelbench", action="store_true")
    parser.add_argument("--warm", type=int, default=0, help="KernelBench-sized runs with N workers started ahead")
    parser.add_argument("--only", nargs="*", help="kernel names to run")
    parser.add_argument("--kb-only", nargs="*", help="KernelBench-sized cases to run (level1, level2)")
    parser.add_argument("--kb-again", type=int, default=1, help="warm KernelBench-sized evaluations after the cold one")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.only:
        for name in list(CASES):
            if not any(o in name for o in args.only):
                del CASES[name]
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}; torch {torch.__version__}", flush=True)
    rows = fidelity(args.repeats) if args.repeats else []
    kb = kernelbench_sized(args.warm, args.kb_only, args.kb_again) if args.kernelbench else []
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "harness_fidelity.json").write_text(json.dumps({"device": device, "fidelity": rows, "kernelbench": kb}, indent=1))
    print(f"\n{device}")
    print(f"{'kernel':18} {'median ms':>10} {'spread(evals)':>13} {'spread(reps)':>12} {'do_bench ms':>11} {'ratio':>6} {'overhead s':>10}")
    for r in rows:
        print(f"{r['kernel']:18} {r['median_ms']:10.4f} {r['spread_across_evals']:13.2%} {r['spread_within_eval']:12.2%} "
              f"{r['do_bench_ms']:11.4f} {r['ratio_to_do_bench']:6.3f} {r['overhead_s']:10.2f}")
    for r in kb:
        print(f"{r['case']:44} {r['phase']:5} {r['status']:10} {r['wall_s']:7.1f} s  speedup {r['speedup']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
