"""Every shipped seed kernel through the evaluator at full size: status, eager and seed times, speedup.

Run from the repository root on a GPU host:

    python3 benchmarks/seed_speedups.py [--level N] [--name SUBSTR] [--out DIR]

It prints one row per seed and a summary (fast_p and the geometric-mean speedup over eager), and
writes DIR/seed_speedups.json and DIR/seed_speedups.md for docs/benchmarks.md. On a CPU it checks
correctness only (`--backend triton-interpret --scale 0.005`), which is how it is smoke-tested.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.judge import Judge  # noqa: E402
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, EvalResult, TimingSettings  # noqa: E402
from kernelsmith.metrics import P_VALUES, TaskOutcome, suite_metrics  # noqa: E402
from kernelsmith.tasks import load_suite, shipped_suite  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=None, help="task file, folder or glob (default: the shipped suite)")
    parser.add_argument("--level", type=int, default=None)
    parser.add_argument("--name", default=None, help="only tasks whose name contains this")
    parser.add_argument("--scale", type=float, default=1.0, help="size scale (1.0: the real sizes)")
    parser.add_argument("--backend", default="auto", choices=[b.value for b in Backend])
    parser.add_argument("--device", type=int, default=None, help="GPU index")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--warm", type=int, default=0, help="keep N workers started ahead (hides start-up)")
    parser.add_argument("--compile-baseline", action="store_true", help="also time torch.compile")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the JSON and Markdown")
    return parser.parse_args(argv)


def evaluate_seeds(args: argparse.Namespace) -> tuple[list[dict], dict]:
    suite = load_suite(args.suite or shipped_suite(), level=args.level, name=args.name, scale=args.scale)
    for problem in suite.problems:
        print(f"broken: {problem}", file=sys.stderr)
    seeded = [task for task in suite.tasks if task.seed_source is not None]
    if not seeded:
        sys.exit("no task with a seed matches")
    judge = Judge.for_backend(Backend(args.backend), args.device)
    if args.warm:
        from evaluators.warm import WarmPool

        judge.workers = WarmPool(size=args.warm)
        judge.workers.prepare(judge.spec)
    baselines = ["eager", "compile"] if args.compile_baseline else ["eager"]
    rows, environment = [], {}
    print(f"{'task':36} {'status':14} {'eager ms':>10} {'seed ms':>10} {'speedup':>8}", flush=True)
    for task in seeded:
        request = EvalRequest(
            task_name=task.label,
            reference_source=task.source,
            candidate_source=task.seed_source,
            backend=Backend(args.backend),
            correctness=CorrectnessSettings(trials=args.trials),
            timing=TimingSettings(repetitions=args.repetitions, baselines=baselines),
        )
        result = judge.evaluate(request)
        row = summarize(task.label, result)
        rows.append(row)
        environment = result.environment.model_dump(mode="json")
        print(
            f"{row['task']:36} {row['status']:14} {fmt(row['eager_ms'], 4):>10} {fmt(row['seed_ms'], 4):>10} "
            f"{fmt(row['speedup'], 2, 'x'):>8}",
            flush=True,
        )
        if row["status"] != "ok":
            print(f"    {row['message'][:300]}", flush=True)
    return rows, environment


def summarize(label: str, result: EvalResult) -> dict:
    eager = result.baselines.get("eager")
    compiled = result.baselines.get("compile")
    return {
        "task": label,
        "status": result.status.value,
        "message": result.message,
        "eager_ms": eager.median_ms if eager else None,
        "compile_ms": compiled.median_ms if compiled else None,
        "seed_ms": result.timing.median_ms if result.timing else None,
        "seed_spread": result.timing.spread if result.timing else None,
        "speedup": result.speedup,
        "speedup_compile": result.speedup_compile,
        "max_abs_error": max((t.max_abs_error or 0.0 for t in result.trials), default=None),
        "duration_s": round(result.duration_s, 2),
    }


def suite_summary(rows: list[dict]) -> dict:
    """fast_p: the share of seeds that are correct and faster than p times eager (fast_0: correct)."""
    metrics = suite_metrics([TaskOutcome(label=r["task"], level=None, correct=r["status"] == "ok", speedup=r["speedup"])
                             for r in rows])
    summary: dict = {"tasks": metrics.tasks, "correct": metrics.correct}
    for p in P_VALUES:
        summary[f"fast_{p:g}"] = metrics.fast[p] or 0.0
    summary["geomean_speedup"] = metrics.geomean_speedup
    summary["mean_speedup"] = metrics.mean_speedup
    return summary


def fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def markdown(rows: list[dict], summary: dict, environment: dict, args: argparse.Namespace) -> str:
    device = environment.get("device") or "unknown device"
    lines = [
        f"Seed kernels against eager PyTorch on {device} (torch {environment.get('torch')}, "
        f"triton {environment.get('triton')}; scale {args.scale:g}, {args.trials} trials, "
        f"{args.repetitions} timed repetitions, median).",
        "",
        "| task | status | eager ms | seed ms | speedup |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['status']} | {fmt(r['eager_ms'], 4)} | {fmt(r['seed_ms'], 4)} | "
            f"{fmt(r['speedup'], 2, 'x')} |"
        )
    fast = ", ".join(f"fast_{p:g} {summary[f'fast_{p:g}']:.2f}" for p in P_VALUES)
    lines += ["", f"{summary['correct']} of {summary['tasks']} seeds correct; {fast}; "
              f"geometric-mean speedup {fmt(summary['geomean_speedup'], 2, 'x')}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    rows, environment = evaluate_seeds(args)
    summary = suite_summary(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment, "settings": {k: str(v) for k, v in vars(args).items()},
              "summary": summary, "seeds": rows, "wall_s": round(time.perf_counter() - started, 1)}
    (args.out / "seed_speedups.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "seed_speedups.md").write_text(markdown(rows, summary, environment, args))
    print()
    print(markdown(rows, summary, environment, args).splitlines()[-1])
    print(f"wrote {args.out / 'seed_speedups.json'} and {args.out / 'seed_speedups.md'}")
    return 0 if summary["correct"] == summary["tasks"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
