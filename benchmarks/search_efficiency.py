"""Search efficiency: from each task's seed kernel, does the archive's Policy find faster launch parameters
in fewer evaluations than uniform random sampling of the same space, or greedy hill-climbing?

Run from the repository root on a GPU host (docs/search-efficiency.md):

    PYTHONPATH=. python3 benchmarks/search_efficiency.py --budget 8 --seeds 2 --repetitions 30 \\
        --gpu-seconds 180 --out DIR

Every strategy and seed of a task draws from one measurement cache keyed by the program's normalized
source (DIR/search_cache.json): no program is measured twice, and the file lets the benchmark run
again on a CPU, with more seeds, from the recorded measurements (`--replay DIR/search_cache.json`; a
curve that needs a program the cache lacks stops there, and the report says so). `--synthetic` scores
programs with a made-up function of their knobs instead of measuring them: for debugging strategies,
never a GPU result. Outputs: DIR/search_efficiency.json (every curve), .md (the tables) and .png.
Beside it: search_measurements.py (the cache), search_landscape.py (the synthetic landscape) and
search_report.py (tables and plot); the strategies are kernelsmith/strategies.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

# what the search needs; measuring needs the evaluator's too (a GPU image gets them as wheels: docs/evolve.md)
NEEDED = {"pydantic": "pydantic", "sqlalchemy": "sqlalchemy", "alembic": "alembic"}
MEASURING = {"torch": "torch", "triton": "triton", "yaml": "pyyaml", "openai": "openai"}


def require(modules: dict[str, str]) -> None:
    missing = [package for module, package in modules.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.exit(f"missing Python packages: {', '.join(missing)} (see docs/evolve.md, 'The GPU benchmark')")


require(NEEDED)

from search_landscape import Synthetic  # noqa: E402
from search_measurements import Cache, Measured, Outcome, Replayed  # noqa: E402
from search_report import markdown, plot, summarize  # noqa: E402

from archive.descriptors import describe  # noqa: E402
from archive.normalize import normalized_hash  # noqa: E402
from archive.policy import Candidate, PolicyConfig  # noqa: E402
from evaluators.protocol import Backend  # noqa: E402
from kernelsmith.params import BackendLimits  # noqa: E402
from kernelsmith.strategies import Child, ParameterSpace, Strategy, make_strategy  # noqa: E402
from kernelsmith.tasks import Task, load_suite, load_task, shipped_suite  # noqa: E402

# five level-1 tasks whose tile sizes matter (a row softmax, a normalization, a 2-D reduction, a matmul,
# a row norm) and two level-2 fusions (a matmul with an epilogue, a matmul followed by a row softmax)
DEFAULT_TASKS = ("level1/13_Softmax,level1/15_LayerNorm,level1/9_SumReduction,level1/19_SquareMatmul,"
                 "level1/17_L2Normalize,level2/1_Linear_ReLU,level2/4_Linear_Softmax")
# "policy" is PolicyConfig's defaults; "policy-early-explore" the defaults before the explore ramp and the
# sharper exploit focus; "policy-uniform" the policy before rank-weighted exploit draws and pooled young
# islands (docs/search-efficiency.md says why each came)
DEFAULT_STRATEGIES = ('policy;policy-early-explore={"exploit_focus": 0.5, "explore_ramp": 0};'
                      'policy-uniform={"exploit_focus": 0, "pooled_until": 0, "explore_ramp": 0};random;hill')


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated task labels or names")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                        help="';'-separated: policy, random, hill, or NAME=JSON for the policy with those "
                        "PolicyConfig fields (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=10, help="evaluations per run, the seed's included")
    parser.add_argument("--seeds", type=int, default=3, help="runs per task and strategy (seeds 0..N-1)")
    parser.add_argument("--idle", type=int, default=50,
                        help="proposals in a row that repeat the run's own programs before it counts as stuck")
    parser.add_argument("--repetitions", type=int, default=30, help="timed repetitions per evaluation")
    parser.add_argument("--trials", type=int, default=3, help="correctness trials per evaluation")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds one evaluation may take")
    parser.add_argument("--warm", type=int, default=2, help="workers kept started ahead per slot")
    parser.add_argument("--gpu-seconds", type=float, default=None,
                        help="measure no new program after this many seconds of measuring, shared by the tasks")
    parser.add_argument("--backend", default="auto", choices=[b.value for b in Backend])
    parser.add_argument("--scale", type=float, default=None, help="size scale (default: 1 on a GPU)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="start from the measurements of an earlier run (copied to OUT/search_cache.json)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--replay", type=Path, metavar="CACHE", help="no evaluator: only the measurements in CACHE")
    mode.add_argument("--synthetic", action="store_true",
                      help="no evaluator: made-up speedups (benchmarks/search_landscape.py); debugging only")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the cache and the reports")
    args = parser.parse_args(argv)
    if args.budget < 2 or args.seeds < 1:
        parser.error("--budget must be at least 2 (the seed and one child) and --seeds at least 1")
    return args


# -- one task: every strategy and seed in lockstep -------------------------------------------------

# the runs of a task propose the same sources again and again: parse each once
program_key = lru_cache(maxsize=1 << 14)(normalized_hash)
descriptor = lru_cache(maxsize=1 << 14)(describe)


@dataclass
class Run:
    strategy: Strategy
    seed: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # normalized hash -> outcome, this run's
    curve: list[float | None] = field(default_factory=list)  # best speedup after each evaluation
    trials: list[dict] = field(default_factory=list)
    proposals: int = 0  # keys the child's RNG, as evolve's proposal number does
    programs: int = 0  # program ids; repeats get one too, as they do in an archive
    gpu_s: float = 0.0
    stop: str | None = None

    @property
    def best(self) -> float | None:
        timed = [o.speedup for o in self.outcomes.values() if o.status == "ok" and o.speedup is not None]
        return max(timed, default=None)

    def add(self, child: Child, key: str, outcome: Outcome) -> None:
        """Give the strategy the result; a program new to the run is one evaluation of its budget."""
        self.programs += 1
        parent = child.parent
        self.strategy.add(Candidate(
            program_id=self.programs, normalized_hash=key, island=child.island,
            parent_id=parent.program_id if parent else None, fitness=outcome.fitness,
            descriptor=descriptor(child.source), generation=parent.generation + 1 if parent else 0,
            message=outcome.message), child.source)
        if key in self.outcomes:
            return
        self.outcomes[key] = outcome
        self.gpu_s += outcome.seconds
        self.curve.append(self.best)
        self.trials.append({"program": key[:16], "mode": child.mode, "knobs": outcome.knobs, "status": outcome.status,
                            "speedup": outcome.speedup})

    def next_child(self, idle: int) -> tuple[Child, str] | None:
        """The next child that is new to this run; a repeat reuses the run's own result, as evolve does."""
        for _ in range(idle):
            rng = random.Random(f"{self.seed}:{self.proposals}")
            self.proposals += 1
            child = self.strategy.propose(rng)
            key = program_key(child.source)
            if key not in self.outcomes:
                return child, key
            self.add(child, key, self.outcomes[key])
        self.stop = f"stuck: {idle} proposals in a row repeated its own programs"
        return None


def parse_strategies(text: str) -> dict[str, PolicyConfig | None]:
    """Strategy names in order, a policy variant ("NAME=JSON") with its PolicyConfig, the rest with None."""
    strategies: dict[str, PolicyConfig | None] = {}
    for part in (part.strip() for part in text.split(";") if part.strip()):
        name, _, config = (item.strip() for item in part.partition("="))
        if not config and name not in ("policy", "random", "hill"):
            sys.exit(f"--strategies: unknown strategy {name!r}: policy, random, hill, or NAME=JSON of PolicyConfig")
        try:
            strategies[name] = PolicyConfig(**json.loads(config)) if config else None
        except (ValueError, TypeError) as error:  # bad JSON, or a field PolicyConfig refuses
            sys.exit(f"--strategies: {name}: {error}")
    if not strategies:
        sys.exit("--strategies: name at least one strategy")
    return strategies


async def search_task(task: Task, source, limits: BackendLimits, args: argparse.Namespace,
                      strategies: dict[str, PolicyConfig | None], quiet: bool = False) -> dict:
    space = ParameterSpace.of(task.seed_source or "", limits)
    runs = [Run(make_strategy(name, space, seed, config), seed)
            for seed in range(args.seeds) for name, config in strategies.items()]

    seed_source = space.source
    seed_key = program_key(seed_source)
    first = await source.get(task, space, seed_source, seed_key)
    for run in runs:
        if first is None:
            run.stop = source.why
        else:
            run.add(Child(seed_source, None, 0, "seed"), seed_key, first)
    # lockstep: every run's n-th evaluation before anyone's (n+1)-th, so a GPU time cap cuts all alike
    for evaluation in range(2, args.budget + 1):
        active = [run for run in runs if run.stop is None]
        if not active:
            break
        before = (source.measured, source.spent_s)
        for run in active:
            proposal = run.next_child(args.idle)
            if proposal is None:
                continue
            child, key = proposal
            result = await source.get(task, space, child.source, key)
            if result is None:
                run.stop = source.why
                continue
            run.add(child, key, result)
        if not quiet and source.measured > before[0]:
            print(f"    evaluation {evaluation}/{args.budget}: {source.measured - before[0]} measured "
                  f"({source.spent_s - before[1]:.1f} s), {len(active)} runs", flush=True)
    for run in runs:
        run.stop = run.stop or "budget"
    return {"space": {label: list(values) for label, values in space.ladders().items()},
            "space_size": space.size, "seed_knobs": {k.label: k.value for k in space.knobs},
            "runs": [{"strategy": run.strategy.name, "seed": run.seed, "curve": run.curve, "stop": run.stop,
                      "proposals": run.proposals, "gpu_s": round(run.gpu_s, 1), "trials": run.trials}
                     for run in runs]}


# -- putting it together -----------------------------------------------------------------------------


def load_tasks(text: str, scale: float) -> list[Task]:
    suite = load_suite(shipped_suite())
    tasks = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        listed = suite.find(name)
        if listed is None:
            sys.exit(f"no shipped task {name!r} (kernelsmith tasks lists them)")
        if listed.seed_source is None:
            sys.exit(f"{listed.label} has no seed kernel: parameter-only search needs one")
        tasks.append(load_task(listed.path, scale))
    return tasks


async def estimate(tasks: list[Task], limits: BackendLimits, args: argparse.Namespace,
                   strategies: dict[str, PolicyConfig | None], cache: Cache | None) -> int:
    """Distinct programs the runs would evaluate on the synthetic landscape: exact for random sampling,
    a guide for the others (what they propose depends on what they measure)."""
    synthetic = Synthetic()
    for task in tasks:
        await search_task(task, synthetic, limits, args, strategies, quiet=True)
    known = {(label, key) for label, entry in cache.tasks.items() for key in entry["programs"]} if cache else set()
    return len({(label, key) for label, scored in synthetic.scored.items() for key in scored} - known)


async def run_all(args: argparse.Namespace) -> dict:
    strategies = parse_strategies(args.strategies)
    args.out.mkdir(parents=True, exist_ok=True)
    evaluator = None
    if args.synthetic:
        kind, backend, scale, source = "synthetic", Backend.triton_nvidia.value, args.scale or 1.0, Synthetic()
    elif args.replay:
        cache = Cache.load(args.replay)
        kind, backend, scale, source = "replay", cache.header["backend"], cache.header["scale"], Replayed(cache)
        args.repetitions, args.trials = cache.header["repetitions"], cache.header["trials"]
    else:
        require(MEASURING)
        from evaluators.local import LocalEvaluator
        from kernelsmith.evolve import default_scale, resolve_backend

        devices = [] if args.backend == Backend.triton_interpret.value else None
        evaluator = LocalEvaluator(devices=devices, cpu_workers=1 if devices == [] else None, warm=args.warm)
        backend = await resolve_backend(evaluator, args.backend)
        scale = args.scale or default_scale(backend)
        kind, source = "measured", Measured(evaluator, backend, args, open_cache(args, backend, scale))
    limits = BackendLimits.for_backend(backend)
    tasks = load_tasks(args.tasks, scale)
    started = time.perf_counter()
    results = {}
    async with contextlib.AsyncExitStack() as stack:
        if evaluator is not None:
            await stack.enter_async_context(evaluator)  # workers start while the estimate is counted
            unknown = await estimate(tasks, limits, args, strategies, source.cache)
            cap = f"; --gpu-seconds {args.gpu_seconds:g} caps the time spent measuring" if args.gpu_seconds else ""
            print(f"{len(tasks)} tasks x {len(strategies)} strategies x {args.seeds} seeds, {args.budget} evaluations "
                  f"each: about {unknown} distinct programs to measure (counted on the synthetic landscape: exact "
                  f"for random sampling, a guide for the rest){cap}", flush=True)
        for index, task in enumerate(tasks):
            source.start_task(len(tasks) - index)
            print(f"  {task.label}", flush=True)
            result = await search_task(task, source, limits, args, strategies)
            result["summary"] = summarize(result["runs"], list(strategies), args.budget)
            results[task.label] = result
    header = source.cache.header if kind != "synthetic" else {}
    runs = [run for task in results.values() for run in task["runs"]]
    return {"kind": kind, "device": header.get("device", "synthetic landscape"), "backend": backend,
            "environment": header.get("environment", {}),
            "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "scale": scale},
            "strategies": {name: config.model_dump() if config else None for name, config in strategies.items()},
            "tasks": results,
            "totals": {"evaluations": sum(len(run["curve"]) for run in runs),
                       "distinct": sum(len({t["program"] for r in task["runs"] for t in r["trials"]})
                                       for task in results.values()),
                       "measured": source.measured, "measure_s": round(source.spent_s, 1),
                       "wall_s": round(time.perf_counter() - started, 1)}}


def open_cache(args: argparse.Namespace, backend: str, scale: float) -> Cache:
    """OUT/search_cache.json, started from --cache when given; refuses one measured with other settings."""
    path = args.out / "search_cache.json"
    if args.cache is not None and args.cache.resolve() != path.resolve():
        if path.exists():
            sys.exit(f"{path} exists: give --cache only with a new --out folder (nothing was overwritten)")
        shutil.copyfile(args.cache, path)
    header = {"format": Cache.FORMAT, "backend": backend, "scale": scale, "repetitions": args.repetitions,
              "trials": args.trials}
    cache = Cache.load(path) if path.exists() else Cache(path, header)
    for key, value in header.items():
        if cache.header.get(key) != value:
            sys.exit(f"{path} holds measurements made with {key} {cache.header.get(key)}, not {value}: use the "
                     "same settings, or a new --out folder")
    return cache


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = asyncio.run(run_all(args))
    stem = args.out / "search_efficiency"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    stem.with_suffix(".md").write_text(table)
    drawn = plot(report, stem.with_suffix(".png"))
    print()
    print(table)
    print(f"{drawn}; wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
