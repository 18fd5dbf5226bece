"""Evaluations per minute with and without the warm worker pool, same device, same run.

A KernelBench level-1-sized task (row softmax over 16 x 16384 floats, as 23_Softmax) and a
plain Triton candidate, evaluated N times with full settings (5 trials, 100 timed repetitions,
eager baseline); every request differs by a comment so none is deduplicated. Each mode uses a
LocalEvaluator (the service's scheduler, no HTTP): cold starts one sandboxed worker per
candidate; warm keeps W pre-started per slot. With several GPUs, `--scaling` also runs warm on
the first GPU alone, to show that throughput grows with GPUs and that every GPU takes work.

    PYTHONPATH=. python3 benchmarks/warm_pool.py                       # GPU 0, 30 evaluations
    PYTHONPATH=. python3 benchmarks/warm_pool.py --devices 0,1 --scaling
    PYTHONPATH=. python3 benchmarks/warm_pool.py --backend triton-interpret --size tiny --evals 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from evaluators.local import LocalEvaluator
from evaluators.protocol import Backend, EvalRequest

REFERENCE = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=1)

batch_size = {batch}
dim = {dim}

def get_inputs():
    return [torch.randn(batch_size, dim)]

def get_init_inputs():
    return []
"""

CANDIDATE = """
import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def softmax_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    # one program per row: the whole row fits in one block, so max and sum need one pass each
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf"))
    x = x - tl.max(x, axis=0)
    e = tl.exp(x)
    tl.store(out_ptr + row * n_cols + cols, e / tl.sum(e, axis=0), mask=mask)

class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        rows, cols = x.shape
        softmax_kernel[(rows,)](x, out, cols, BLOCK=triton.next_power_of_2(cols), num_warps={warps})
        return out
# variant {variant}
"""

SIZES = {"level1": (16, 16384, 16), "tiny": (4, 256, 4)}


def request_for(variant: int, size: str, backend: Backend) -> EvalRequest:
    batch, dim, warps = SIZES[size]
    return EvalRequest(
        task_name=f"softmax_{batch}x{dim}", reference_source=REFERENCE.format(batch=batch, dim=dim),
        candidate_source=CANDIDATE.format(warps=warps, variant=variant), backend=backend,
    )


async def measure(label: str, devices: list[int] | None, cpu_workers: int | None, warm: int, args: argparse.Namespace,
                  first_variant: int) -> dict[str, object]:
    backend = Backend(args.backend)
    async with LocalEvaluator(devices=devices, cpu_workers=cpu_workers, warm=warm) as evaluator:
        # untimed: computes the reference outputs and baseline timings every later request reuses
        primer = await evaluator.evaluate(request_for(first_variant, args.size, backend))
        if primer.status.value != "ok":
            raise SystemExit(f"the candidate does not pass: {primer.summary()}\n{primer.log[-2000:]}")
        scheduler = evaluator.scheduler
        if scheduler.warm is not None:  # start from a full pool, as a long-running service would be
            for lane in scheduler.lanes.values():
                for spec in {slot.spec for slot in lane.slots}:
                    count = sum(slot.spec == spec for slot in lane.slots) * warm
                    scheduler.warm.wait_ready(spec, count, timeout_s=300)
            scheduler.warm.stats.hits = scheduler.warm.stats.misses = 0
        requests = [request_for(first_variant + 1 + n, args.size, backend) for n in range(args.evals)]
        started = time.perf_counter()
        results = await asyncio.gather(*(evaluator.evaluate(request) for request in requests))
        wall = time.perf_counter() - started
        digests = {request.digest() for request in requests}
        per_slot = Counter(job.slot for job in scheduler.jobs.values() if job.digest in digests)
        stats = scheduler.warm.stats if scheduler.warm is not None else None
        timed = [r.timing for r in results if r.timing is not None]
        return {
            "mode": label, "slots": sum(len(lane.slots) for lane in scheduler.lanes.values()), "warm_per_slot": warm,
            "evaluations": len(results), "wall_s": round(wall, 2),
            "evals_per_minute": round(len(results) / wall * 60, 1),
            "mean_eval_s": round(sum(r.duration_s for r in results) / len(results), 3),
            # from acquiring a worker to its `ready`: what the warm pool takes off each candidate
            "mean_worker_start_s": round(sum(r.phase_s.get("worker_start", 0.0) for r in results) / len(results), 3),
            "statuses": dict(Counter(r.status.value for r in results)),
            "not_ok": [f"{r.status.value}: {r.message[:300]}" for r in results if r.status.value != "ok"],
            "per_slot": dict(sorted(per_slot.items())),
            "warm_hits": stats.hits if stats else None, "warm_misses": stats.misses if stats else None,
            # workers starting beside a timed candidate must not disturb its timing: these should agree
            "candidate_median_ms": _middle([t.median_ms for t in timed]),
            "candidate_spread": _middle([t.spread for t in timed]),
            "device": results[0].environment.device,
        }


def _middle(values: list[float]) -> float | None:
    return round(statistics.median(values), 5) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evals", type=int, default=30, help="timed evaluations per mode")
    parser.add_argument("--warm", type=int, default=3, help="pre-started workers per slot in the warm mode")
    parser.add_argument("--devices", default="0", help="GPU indices, e.g. 0,1 (ignored for triton-interpret)")
    parser.add_argument("--backend", default="auto", choices=[b.value for b in Backend])
    parser.add_argument("--size", default="level1", choices=sorted(SIZES))
    parser.add_argument("--scaling", action="store_true", help="also run warm on the first GPU alone")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    interpret = args.backend == Backend.triton_interpret.value
    devices = None if interpret else [int(part) for part in args.devices.split(",")]
    gpu_devices, cpu_workers = ([], 1) if interpret else (devices, 0)
    modes = [("cold", gpu_devices, 0), ("warm", gpu_devices, args.warm)]
    if args.scaling and gpu_devices and len(gpu_devices) > 1:
        modes.append((f"warm, GPU {gpu_devices[0]} alone", gpu_devices[:1], args.warm))
    rows = []
    for number, (label, mode_devices, warm) in enumerate(modes):
        rows.append(asyncio.run(measure(label, mode_devices, cpu_workers, warm, args, first_variant=number * 100_000)))
        print(json.dumps(rows[-1]), flush=True)

    cold, warm_row = rows[0], rows[1]
    print(f"\n{'mode':<24} {'slots':>5} {'evals/min':>10} {'eval s':>7} {'start s':>8} {'kernel ms':>10} "
          f"{'spread':>7}  per slot")
    for row in rows:
        print(f"{row['mode']:<24} {row['slots']:>5} {row['evals_per_minute']:>10} {row['mean_eval_s']:>7} "
              f"{row['mean_worker_start_s']:>8} {row['candidate_median_ms']!s:>10} {row['candidate_spread']!s:>7}  "
              f"{row['per_slot']}")
    gain = warm_row["evals_per_minute"] / cold["evals_per_minute"]  # type: ignore[operator]
    print(f"\nwarm pool: {gain:.2f}x the evaluations per minute of cold starts on {cold['device']}")
    print(f"host: {platform.node()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "warm_gain": gain}, indent=2) + "\n")
    failed = any(set(row["statuses"]) != {"ok"} for row in rows)  # type: ignore[arg-type]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
