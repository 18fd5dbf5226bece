"""Evaluate the harness's test candidates on a GPU backend and compare verdicts with the CPU's.

    python3 benchmarks/gpu_verdicts.py [--backend triton-nvidia] [--out results.json]

Every candidate must get the verdict the CPU test suite expects; timings are printed as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.judge import Judge  # noqa: E402
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest  # noqa: E402

CANDIDATES = ROOT / "tests" / "evaluators" / "candidates"
EXPECTED = [
    ("relu_reference.py", "relu_ok.py", "ok"),
    ("softmax_reference.py", "softmax_ok.py", "ok"),
    ("matmul_reference.py", "matmul_ok.py", "ok"),
    ("relu_reference.py", "relu_off_by_one.py", "incorrect"),
    ("softmax_reference.py", "softmax_wrong_axis.py", "incorrect"),
    ("relu_reference.py", "relu_zeros.py", "incorrect"),
    ("relu_reference.py", "relu_nan.py", "incorrect"),
    ("relu_reference.py", "relu_syntax_error.py", "compile_error"),
    ("relu_reference.py", "relu_no_modelnew.py", "compile_error"),
    ("relu_reference.py", "relu_bad_signature.py", "compile_error"),
    ("relu_reference.py", "relu_raises.py", "runtime_error"),
    ("relu_reference.py", "relu_segfault.py", "runtime_error"),
    ("relu_reference.py", "relu_hangs.py", "timeout"),
    ("relu_reference.py", "relu_env_probe.py", "rejected"),  # it reaches for os: a static check stops it
]


def ipc_matrix(backend: Backend) -> None:
    from evaluators.sandbox import ProcessSandbox

    for isolate in (False, True):
        for drop in (False, True):
            judge = Judge.for_backend(backend, sandbox=ProcessSandbox(isolate_network=isolate, drop_privileges=drop))
            request = EvalRequest(task_name="ipc", reference_source=(CANDIDATES / "relu_reference.py").read_text(),
                                  candidate_source=(CANDIDATES / "relu_ok.py").read_text(), backend=backend)
            result = judge.evaluate(request)
            print(f"network cut={isolate} privileges dropped={drop}: ipc={judge.ipc_works} "
                  f"status={result.status.value} phases={result.phase_s}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="triton-nvidia")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ipc-matrix", action="store_true", help="which sandbox setups let CUDA IPC through")
    args = parser.parse_args()
    if args.ipc_matrix:
        ipc_matrix(Backend(args.backend))
    os.environ["KS_CANARY_SECRET"] = "canary-value-that-must-not-leak"
    judge = Judge.for_backend(Backend(args.backend))
    rows = []
    for reference, candidate, expected in EXPECTED:
        request = EvalRequest(
            task_name=candidate,
            reference_source=(CANDIDATES / reference).read_text(),
            candidate_source=(CANDIDATES / candidate).read_text(),
            backend=Backend(args.backend),
            correctness=CorrectnessSettings(trials=3),
            time_limit_s=30 if "hangs" in candidate else 120,
        )
        started = time.perf_counter()
        result = judge.evaluate(request)
        leaked = "canary-value-that-must-not-leak" in result.model_dump_json()
        rows.append({
            "candidate": candidate, "expected": expected, "status": result.status.value,
            "match": result.status.value == expected and not leaked, "leaked_secret": leaked,
            "median_ms": result.timing.median_ms if result.timing else None,
            "speedup": result.speedup, "wall_s": round(time.perf_counter() - started, 2),
            "network_isolated": result.environment.network_isolated,
            "privileges_dropped": result.environment.privileges_dropped,
            "message": result.message[:160], "device": result.environment.device,
        })
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(f"\n{'candidate':28} {'expected':14} {'got':14} {'ms':>9} {'speedup':>8} {'wall s':>7}")
    for row in rows:
        ms = f"{row['median_ms']:.4f}" if row["median_ms"] else "-"
        sp = f"{row['speedup']:.2f}" if row["speedup"] else "-"
        flag = "" if row["match"] else "  <-- MISMATCH"
        print(f"{row['candidate']:28} {row['expected']:14} {row['status']:14} {ms:>9} {sp:>8} {row['wall_s']:>7}{flag}")
    return 0 if all(row["match"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
