"""Parameter-only evolution (no LLM) from the seed kernels of shipped tasks: does tuning tile sizes,
num_warps and num_stages raise the measured speedup, and within how many evaluations?

Run from the repository root on a GPU host:

    PYTHONPATH=. python3 benchmarks/param_evolution.py [--tasks 13_Softmax,15_LayerNorm] [--max-evals 12]
        [--repetitions 100] [--out DIR]

One embedded evaluator with a warm worker pool serves every task in turn, and every run goes to one
fresh archive (DIR/param_evolution.db). It prints one row per task (seed speedup, best speedup, gain,
evaluations used, the evaluation that found the best) and writes DIR/param_evolution.json and
DIR/param_evolution.md, naming the GPU. On a CPU it checks that the loop runs (no timings):

    PYTHONPATH=. python3 benchmarks/param_evolution.py --backend triton-interpret --tasks 1_ReLU --max-evals 3
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# what the loop needs beyond torch and triton; a GPU image without them gets them as wheels (docs/evolve.md)
NEEDED = {"pydantic": "pydantic", "sqlalchemy": "sqlalchemy", "alembic": "alembic", "yaml": "pyyaml",
          "openai": "openai", "rich": "rich"}
missing = [package for module, package in NEEDED.items() if importlib.util.find_spec(module) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)} (see docs/evolve.md, 'The GPU benchmark')")

import archive  # noqa: E402
from evaluators.local import LocalEvaluator  # noqa: E402
from evaluators.protocol import Backend, Status  # noqa: E402
from kernelsmith.config import Settings  # noqa: E402
from kernelsmith.evolve import EvolveError, RunSummary, default_scale, evolve, resolve_backend  # noqa: E402
from kernelsmith.params import BackendLimits, find_knobs  # noqa: E402
from kernelsmith.tasks import load_suite, load_task, shipped_suite  # noqa: E402

# level-1 tasks whose seeds have tile sizes that matter: a row reduction, a normalization, a 2-D
# reduction, a matmul, and an elementwise kernel with some arithmetic
DEFAULT_TASKS = "13_Softmax,15_LayerNorm,9_SumReduction,19_SquareMatmul,5_GELU"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated task names or labels")
    parser.add_argument("--max-evals", type=int, default=12, help="evaluations per task, the seed's included")
    parser.add_argument("--repetitions", type=int, default=100, help="timed repetitions per evaluation (30: quick)")
    parser.add_argument("--trials", type=int, default=3, help="correctness trials per evaluation")
    parser.add_argument("--warm", type=int, default=2, help="workers kept started ahead per slot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto", choices=[b.value for b in Backend])
    parser.add_argument("--scale", type=float, default=None, help="size scale (default: 1 on a GPU)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the archive, JSON and Markdown")
    return parser.parse_args(argv)


class Lines:
    """One line per stored result, so a long run shows it is alive."""

    def started(self, stats) -> None:
        print(f"  run {stats.run_id}: {stats.task_name} on {stats.backend}", flush=True)

    def update(self, stats) -> None:
        if stats.last_event and stats.last_event != getattr(self, "_last", None):
            self._last = stats.last_event
            print(f"    [{stats.evaluations}/{stats.max_evals}] {stats.last_event}", flush=True)

    def finished(self, summary: RunSummary) -> None: ...


async def run_all(args: argparse.Namespace) -> tuple[list[dict], dict]:
    suite = load_suite(shipped_suite())
    names = [name.strip() for name in args.tasks.split(",") if name.strip()]
    found = []
    for name in names:
        task = suite.find(name)
        if task is None:
            sys.exit(f"no shipped task {name!r} (kernelsmith tasks lists them)")
        found.append(task)
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "param_evolution.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # results of earlier invocations must not be reused
    settings = Settings.model_validate({
        "backend": args.backend, "seed": args.seed,
        "budgets": {"max_evals": args.max_evals, "idle": max(20, 4 * args.max_evals)},
        "evaluation": {"trials": args.trials, "repetitions": args.repetitions, "warm": args.warm},
    })
    devices = [] if args.backend == Backend.triton_interpret.value else None
    rows, environment = [], {}
    with archive.open(db) as store:
        async with LocalEvaluator(devices=devices, cpu_workers=1 if devices == [] else None, warm=args.warm) as pool:
            backend = await resolve_backend(pool, settings.backend)
            scale = args.scale or default_scale(backend)
            for listed in found:
                task = load_task(listed.path, scale)
                started = time.perf_counter()
                try:
                    summary = await evolve(task, settings, store, pool, progress=Lines())
                except EvolveError as error:
                    print(f"  {task.label}: {error}", flush=True)
                    continue
                row = summarize(store, summary, time.perf_counter() - started)
                rows.append(row)
                environment = environment or row.pop("environment")
                row.pop("environment", None)
                print(f"{row['task']:28} seed {fmt(row['seed_speedup'])}  best {fmt(row['best_speedup'])}  "
                      f"gain {fmt(row['gain'])}  {row['evaluations']} evaluations (best at {row['best_at']})",
                      flush=True)
    return rows, environment


def summarize(store: archive.Archive, summary: RunSummary, wall_s: float) -> dict:
    """One task's row: the seed's and the best program's speedups, and where in the run the best came."""
    programs = store.programs(summary.run_id)
    seed = next((p for p in programs if p.operator == "seed"), None)
    seed_eval = store.latest_evaluation(seed) if seed else None
    fresh = [p for p in programs if "reused_from" not in p.metadata and store.evaluations(p)]
    best_at = next((i + 1 for i, p in enumerate(fresh) if p.id == summary.best_program_id), None)
    best = store.get_program(summary.best_program_id) if summary.best_program_id else None
    seed_speedup = seed_eval.speedup if seed_eval and seed_eval.status == Status.ok else None
    gain = summary.best_speedup / seed_speedup if summary.best_speedup and seed_speedup else None
    return {
        "task": summary.task_name,
        "run": summary.run_id,
        "seed_status": seed_eval.status.value if seed_eval else None,
        "seed_speedup": seed_speedup,
        "best_speedup": summary.best_speedup,
        "best_correct": summary.correct,
        "gain": gain,
        "evaluations": summary.evaluations,
        "reused": summary.reused,
        "best_at": best_at,
        "best_program": summary.best_program_id,
        "best_change": knob_changes(seed.source, best.source, summary.backend) if seed and best else None,
        "lineage": summary.lineage,
        "stop": summary.stop_message,
        "wall_s": round(wall_s, 1),
        "environment": seed_eval.result.environment.model_dump(mode="json") if seed_eval else {},
    }


def knob_changes(seed: str, best: str, backend: str) -> str:
    """The launch parameters the best program changed from the seed, e.g. "BLOCK_SIZE 1024->4096"."""
    limits = BackendLimits.for_backend(backend)
    before = {knob.label: knob.value for knob in find_knobs(seed, limits)}
    after = {knob.label: knob.value for knob in find_knobs(best, limits)}
    changed = [f"{label} {before[label]}->{value}" for label, value in after.items()
               if label in before and before[label] != value]
    return ", ".join(changed) or "none (the seed)"


def fmt(value: float | None, suffix: str = "x") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def markdown(rows: list[dict], environment: dict, args: argparse.Namespace) -> str:
    device = environment.get("device") or "unknown device"
    lines = [
        f"Parameter-only evolution from the seed kernels on {device} (torch {environment.get('torch')}, "
        f"triton {environment.get('triton')}; {args.max_evals} evaluations per task, the seed's included; "
        f"{args.trials} correctness trials, {args.repetitions} timed repetitions, median; seed {args.seed}).",
        "",
        "| task | seed speedup | best speedup | gain | evaluations | best found at | best's parameters vs the seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['task']} | {fmt(r['seed_speedup'])} | {fmt(r['best_speedup'])} | {fmt(r['gain'])} | "
                     f"{r['evaluations']} | {r['best_at'] or '-'} | {r['best_change'] or '-'} |")
    gains = [r["gain"] for r in rows if r["gain"]]
    if gains:
        geomean = math.exp(sum(map(math.log, gains)) / len(gains))
        raised = sum(g > 1 for g in gains)
        lines += ["", f"The best beat its seed on {raised} of {len(rows)} tasks; geometric-mean gain {geomean:.2f}x. "
                  "A best speedup is the maximum of noisy measurements: small gains are within timing spread."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    rows, environment = asyncio.run(run_all(args))
    report = {"environment": environment, "settings": {k: str(v) for k, v in vars(args).items()},
              "tasks": rows, "wall_s": round(time.perf_counter() - started, 1)}
    (args.out / "param_evolution.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "param_evolution.md").write_text(markdown(rows, environment, args))
    print()
    print(markdown(rows, environment, args))
    print(f"{report['wall_s']} s; wrote {args.out / 'param_evolution.json'} and {args.out / 'param_evolution.md'}")
    return 0 if rows and all(r["best_correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
