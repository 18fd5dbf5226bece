"""Load on the evaluator service: M concurrent clients x K requests each, against a local server.

Reports throughput, latency (p50, p90, p99, max), HTTP answers by code and results by status.
`--distinct N` sets how many different candidates the requests cycle through: `--distinct 1
--prime` measures the HTTP layer alone (the one evaluation happens before the clock starts, then
every submit is answered from its stored result); the default, M*K, makes every request a real
evaluation.

    PYTHONPATH=. python3 benchmarks/service_load.py --clients 50 --requests 20 --distinct 1 --prime
    PYTHONPATH=. python3 benchmarks/service_load.py --clients 50 --requests 20 --distinct 100 --warm 1
    PYTHONPATH=. python3 benchmarks/service_load.py --url http://host:8470 --token ...   # a running service

Exits 1 if any request went unanswered or any answer was a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from evaluators.client import AsyncEvaluatorClient, EvaluatorError, RetryPolicy
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest

REFERENCE = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)

def get_inputs():
    return [torch.randn(8, 128)]

def get_init_inputs():
    return []
"""

CANDIDATE = """
import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.maximum(tl.load(x_ptr + offsets, mask=mask), 0.0), mask=mask)

class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out
# variant {variant}
"""


def request_for(variant: int, backend: Backend) -> EvalRequest:
    return EvalRequest(
        task_name="relu_8x128", reference_source=REFERENCE, candidate_source=CANDIDATE.format(variant=variant),
        backend=backend, correctness=CorrectnessSettings(trials=1, recheck_after_timing=0), time_limit_s=300,
    )


def start_server(args: argparse.Namespace, token: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "evaluators", "--port", "0", "--token", token, "--warm", str(args.warm),
               "--max-queue", str(args.max_queue)]
    if args.cpu_workers is not None:
        command += ["--cpu-workers", str(args.cpu_workers)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://\S+", line)
    if not found:
        process.kill()
        raise SystemExit(f"the evaluator did not start: {line!r}")
    url = found.group(0)
    for _ in range(300):
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, url


async def one_client(number: int, args: argparse.Namespace, url: str, token: str, answers: Counter[int],
                     latencies: list[float], statuses: Counter[str], errors: Counter[str]) -> None:
    async def count(response: httpx.Response) -> None:
        answers[response.status_code] += 1

    backend = Backend(args.backend)
    async with AsyncEvaluatorClient(url, token=token, retry=RetryPolicy(attempts=5), wait_s=30) as client:
        client.http.event_hooks["response"].append(count)
        for k in range(args.requests):
            variant = (number * args.requests + k) % args.distinct
            started = time.perf_counter()
            try:
                result = await client.evaluate(request_for(variant, backend), timeout_s=args.timeout)
                statuses[result.status.value] += 1
            except EvaluatorError as error:
                errors[type(error).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(args: argparse.Namespace, url: str, token: str) -> dict[str, object]:
    answers: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    if args.prime:  # evaluate every distinct candidate before the clock starts: only stored results are timed
        async with AsyncEvaluatorClient(url, token=token) as client:
            await asyncio.gather(*(client.evaluate(request_for(v, Backend(args.backend))) for v in range(args.distinct)))
    started = time.perf_counter()
    await asyncio.gather(*(one_client(n, args, url, token, answers, latencies, statuses, errors)
                           for n in range(args.clients)))
    wall = time.perf_counter() - started
    total = args.clients * args.requests
    return {
        "clients": args.clients, "requests_per_client": args.requests, "requests": total,
        "distinct_candidates": args.distinct, "primed": args.prime, "warm": args.warm, "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_s": {name: round(quantile(latencies, q), 4)
                      for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
        "answered": len(latencies), "unanswered": total - len(latencies), "errors": dict(errors),
        "http": {str(code): n for code, n in sorted(answers.items())},
        "results": dict(statuses),
        "http_5xx": sum(n for code, n in answers.items() if code >= 500),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client, one after another")
    parser.add_argument("--distinct", type=int, help="different candidates cycled through (default: all)")
    parser.add_argument("--prime", action="store_true", help="evaluate the distinct candidates before timing")
    parser.add_argument("--backend", default="triton-interpret", choices=[b.value for b in Backend])
    parser.add_argument("--url", help="a running evaluator (default: start one here)")
    parser.add_argument("--token", default=os.environ.get("KERNELSMITH_EVALUATOR_TOKEN"))
    parser.add_argument("--cpu-workers", type=int, help="CPU slots of the server started here")
    parser.add_argument("--warm", type=int, default=0, help="warm workers per slot of the server started here")
    parser.add_argument("--max-queue", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a request may take in all")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.distinct = args.distinct or args.clients * args.requests

    process = None
    token = args.token or secrets.token_urlsafe(24)
    url = args.url
    if url is None:
        process, url = start_server(args, token)
    try:
        report = asyncio.run(run(args, url, token))
        info = httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    report["server"] = {"capacity": info["capacity"], "warm": info["warm"], "versions": info["versions"]}
    report["host"] = f"{platform.node()} ({os.cpu_count()} CPUs)"
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["unanswered"] == 0 and report["http_5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
