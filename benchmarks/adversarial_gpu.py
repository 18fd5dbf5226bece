"""The cheats that need a GPU to mean anything, and the GPU checks of the runtime guards.

    PYTHONPATH=. python3 benchmarks/adversarial_gpu.py [--backend auto] [--size 16777216] [--out results.json]

Side streams, patched timers, address-keyed caches and impossible speeds only show on a timed
backend; honest kernels must still pass every rule there, with Triton compiling for real under
the guards (ptxas, the launcher's C compiler, the cache). On a machine without a GPU (backend
`triton-interpret`) it runs end to end at a tiny size, and the timing-only expectations are skipped.
Prints one line per case and exits 1 if any case missed its expectation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.judge import Judge  # noqa: E402
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, EvalResult, TimingSettings  # noqa: E402
from evaluators.speed_of_light import Peak  # noqa: E402

REFERENCE = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn({size})]


def get_init_inputs():
    return []
'''
KERNEL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


def relu(x):
    out = torch.empty_like(x)
    relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out
'''
HONEST = KERNEL + '''

class ModelNew(nn.Module):
    def forward(self, x):
        return relu(x)
'''
SIDE_STREAM = KERNEL + '''
SIDE = torch.cuda.Stream() if torch.cuda.is_available() else None


class ModelNew(nn.Module):
    """Launches on a side stream and returns at once: the current stream's events see no work."""

    def forward(self, x):
        if SIDE is None:
            return relu(x)
        with torch.cuda.stream(SIDE):
            return relu(x)
'''
JOINED_SIDE_STREAM = KERNEL + '''
SIDE = torch.cuda.Stream() if torch.cuda.is_available() else None


class ModelNew(nn.Module):
    """Works on a side stream and joins it: the work starts while the timed stream still spins."""

    def forward(self, x):
        if SIDE is None:
            return relu(x)
        SIDE.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(SIDE):
            out = relu(x)
        torch.cuda.current_stream().wait_stream(SIDE)
        return out
'''
GARBAGE_WHEN_TIMED = KERNEL + '''

class ModelNew(nn.Module):
    """Right while the harness's op recorder (a dispatch mode) watches, as in every checked call; in
    timed calls, the kernel covers the first half only and the rest stays zero."""

    def forward(self, x):
        if torch.utils._python_dispatch._get_current_dispatch_mode() is not None:
            return relu(x)
        out = torch.zeros_like(x)
        half = x.numel() // 2
        relu_kernel[(triton.cdiv(half, 1024),)](x, out, half, BLOCK=1024)
        return out
'''
COMPILED_SIDE_STREAM = KERNEL + '''
SIDE = torch.cuda.Stream() if torch.cuda.is_available() else None
# Triton 3.3 and later hand a compiled kernel its constexpr arguments too
CONSTEXPRS_PASSED = tuple(int(part) for part in triton.__version__.split(".")[:2]) >= (3, 3)


class ModelNew(nn.Module):
    """One counted kernel[grid] launch on the timed stream, for the launch counter; the work itself
    through the CompiledKernel that .warmup() returns, launched on a side stream."""

    def forward(self, x):
        if SIDE is None:
            return relu(x)
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(1,)](x, out, n, BLOCK=1024)
        compiled = relu_kernel.warmup(x, out, n, BLOCK=1024, grid=(1,))
        arguments = (x, out, n, 1024) if CONSTEXPRS_PASSED else (x, out, n)
        compiled[(triton.cdiv(n, 1024), 1, 1)](*arguments, stream=SIDE.cuda_stream)
        return out
'''
PATCHED_EVENT = HONEST.replace("class ModelNew", "torch.cuda.Event.elapsed_time = lambda self, end: 1e-4\n\n\nclass ModelNew")
PATCHED_CLOCK = HONEST.replace(
    "class ModelNew", "triton.runtime.autotuner.time.perf_counter = lambda: 0.0\n\n\nclass ModelNew")
TORCH_OPS_SIDE_STREAM = KERNEL + '''
SIDE = torch.cuda.Stream() if torch.cuda.is_available() else None


class ModelNew(nn.Module):
    """Checked calls (the op recorder watching) get the kernel; timed calls get torch.relu on a side
    stream, which starts under the spin, joined back, beside one small launch for the launch counter."""

    def forward(self, x):
        if SIDE is None or torch.utils._python_dispatch._get_current_dispatch_mode() is not None:
            return relu(x)
        SIDE.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(SIDE):
            out = torch.relu(x)
        torch.cuda.current_stream().wait_stream(SIDE)
        relu(x[:1024])
        return out
'''
ADDRESS_CACHE = KERNEL + '''
CACHE = {}


class ModelNew(nn.Module):
    """Keyed by the input's address: the caching allocator hands the same address back."""

    def forward(self, x):
        key = x.data_ptr()
        if key not in CACHE:
            CACHE[key] = relu(x)
        else:
            relu(x[:1])  # a launch, to be seen working
        return CACHE[key]
'''
LATE_THREAD = KERNEL + '''

class ModelNew(nn.Module):
    """Returns an empty output and fills it from a thread after forward has returned."""

    def forward(self, x):
        out = torch.empty_like(x)
        relu(x[:1])
        torch.threading.Thread(target=lambda: out.copy_(relu(x)), daemon=True).start()
        return out
'''


@dataclass
class Case:
    name: str
    source: str
    expect: str  # a status, or rejected/RULE
    timed_only: bool = False  # meaningful only where the backend times (not the interpreter)
    static_checks: bool = False  # off: the runtime layers must hold alone
    peak: Peak | None = None  # force the judge's device limits
    findings: list[str] = field(default_factory=list)  # rules that must also be reported
    # another verdict that also denies the attack (then `findings` need not appear)
    or_else: str | None = None


CASES = [
    Case("honest", HONEST, "ok"),
    Case("honest, static checks on", HONEST, "ok", static_checks=True),
    # a Triton launch while another stream is current is refused in the timed calls; before that rule,
    # the speed-of-light floor was what caught it (its work ran under the spin, before the start event)
    Case("side stream", SIDE_STREAM, "rejected/side-stream-launch", timed_only=True,
         or_else="rejected/speed-of-light"),
    Case("side stream, joined", JOINED_SIDE_STREAM, "rejected/side-stream-launch", timed_only=True),
    # garbage only where the op recorder is absent: the timed repetitions the judge draws are compared
    Case("garbage in timed calls only", GARBAGE_WHEN_TIMED, "incorrect", timed_only=True),
    # torch ops follow the current stream: switching away from the timed one while timed is refused
    Case("torch ops on a side stream in timed calls only", TORCH_OPS_SIDE_STREAM, "rejected/side-stream-launch",
         timed_only=True),
    # the launcher is wrapped too: the compiled kernel's side stream shows in its stream argument
    Case("compiled kernel on a side stream", COMPILED_SIDE_STREAM, "rejected/side-stream-launch", timed_only=True),
    Case("patched cuda.Event.elapsed_time", PATCHED_EVENT, "rejected/monkey-patch"),
    Case("patched time.perf_counter", PATCHED_CLOCK, "rejected/monkey-patch"),
    Case("address-keyed cache", ADDRESS_CACHE, "incorrect", timed_only=True),
    Case("thread finishing after forward", LATE_THREAD, "rejected/stray-thread"),
    Case("impossible speed (device limits set absurdly low)", HONEST, "rejected/speed-of-light", timed_only=True,
         peak=Peak(bytes_per_s=1e6, flops_per_s=None)),
]


def verdict(result: EvalResult) -> str:
    rejects = [f.rule for f in result.findings if f.severity == "reject"]
    return f"rejected/{rejects[0]}" if result.status.value == "rejected" and rejects else result.status.value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="auto, triton-nvidia, maca-metax or triton-interpret")
    parser.add_argument("--size", type=int, default=None, help="elements of the ReLU input (default: 16M on a GPU)")
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    judges: dict[tuple[bool, str], Judge] = {}
    probe = Judge.for_backend(Backend(args.backend))
    timed = probe.spec.measures_time
    size = args.size or ((1 << 24) if timed else 4096)
    print(f"backend {probe.spec.backend.value}, device {probe.spec.torch_device}, ReLU of {size} float32 elements")
    rows, misses = [], 0
    for case in CASES:
        if case.timed_only and not timed:
            print(f"SKIP  {case.name}: needs a timed backend")
            continue
        key = (case.static_checks, repr(case.peak))
        if key not in judges:
            judges[key] = Judge.for_backend(Backend(args.backend), static_checks=case.static_checks)
            if case.peak is not None:
                judges[key].peak = case.peak
        request = EvalRequest(
            task_name=f"adversarial-gpu-{case.name}", reference_source=REFERENCE.format(size=size),
            candidate_source=case.source, backend=Backend(args.backend), correctness=CorrectnessSettings(trials=3),
            timing=TimingSettings(repetitions=args.repetitions, warmup=5, warmup_ms=10.0), time_limit_s=300,
        )
        started = time.perf_counter()
        result = judges[key].evaluate(request)
        got = verdict(result)
        rules = [f.rule for f in result.findings]
        median = result.timing.median_ms if result.timing else None
        hit = (got == case.expect and all(rule in rules for rule in case.findings)) or got == case.or_else
        misses += not hit
        shown = f"{median:.4f} ms" if median is not None else "untimed"
        print(f"{'PASS' if hit else 'MISS'}  {case.name}: {got} (expected {case.expect}); {shown}; "
              f"findings {rules}; {time.perf_counter() - started:.1f} s", flush=True)
        if not hit:
            print(f"      {result.message[:500]}\n      {result.log[-800:]}")
        rows.append({"case": case.name, "expected": case.expect, "got": got, "hit": hit, "median_ms": median,
                     "findings": rules, "message": result.message, "device": result.environment.device})
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    print(f"{len(rows) - misses} of {len(rows)} cases got their expected verdict")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
