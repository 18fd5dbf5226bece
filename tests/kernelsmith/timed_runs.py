"""Runs with measured speedups, written through the archive API: the CPU cannot time kernels, so these
stand in for GPU runs. The sources are the shipped ReLU seed with its tile size and warps changed; the
results are full EvalResults with timing figures and baselines, as a GPU evaluator returns them."""

from __future__ import annotations

from archive import Archive, Leaderboard, Run
from evaluators.protocol import Environment, EvalResult, Stage, Status, TimingStats
from kernelsmith.tasks import Task, load_suite, shipped_suite

DEVICE = "Test GPU (synthetic timings)"
EAGER_MS = 0.50
COMPILE_MS = EAGER_MS * 4 / 5


def shipped_task(label: str) -> Task:
    task = load_suite(shipped_suite()).find(label)
    assert task is not None, label
    return task


def relu_task() -> Task:
    return shipped_task("level1/1_ReLU")


def variant(source: str, block: int = 1024, warps: int = 4) -> str:
    return source.replace("BLOCK_SIZE = 1024", f"BLOCK_SIZE = {block}").replace("NUM_WARPS = 4", f"NUM_WARPS = {warps}")


def timed_result(task_name: str, status: Status, speedup: float | None = None, message: str = "") -> EvalResult:
    """A GPU evaluator's verdict; `speedup` over eager sets the candidate's time. The speedup fields hold
    exactly `speedup` and 4/5 of it (torch.compile is faster than eager here), so ties stay exact."""
    timing = baselines = None
    if status == Status.ok and speedup is not None:
        timing = TimingStats.from_samples([EAGER_MS / speedup * f for f in (0.98, 1.0, 1.0, 1.01, 1.03)])
        baselines = {
            "eager": TimingStats.from_samples([EAGER_MS * f for f in (0.99, 1.0, 1.0, 1.01, 1.02)]),
            "compile": TimingStats.from_samples([COMPILE_MS * f for f in (0.99, 1.0, 1.0, 1.01, 1.02)]),
        }
    return EvalResult(
        task_name=task_name,
        status=status,
        stage=Stage.done if status == Status.ok else Stage.correctness if status == Status.incorrect else Stage.load,
        message=message,
        timing=timing,
        baselines=baselines or {},
        speedup=speedup if timing else None,
        speedup_compile=speedup * 4 / 5 if timing and speedup is not None else None,
        environment=Environment(backend="triton-nvidia", device=DEVICE, torch="2.11.0", triton="3.6.0"),
    )


def timed_run(db: Archive) -> Run:
    """ReLU: seed 1.00x -> BLOCK 2048 1.25x -> 8 warps 1.60x (the best), with side branches that failed,
    a repeat whose result was reused, and a mutation that made no program."""
    task = relu_task()
    seed_source = task.seed_source or ""
    run = db.create_run(task.label, task.source, config={
        "backend": "triton-nvidia",
        "settings": {"budgets": {"max_evals": 6}, "models": [], "evaluation": {"compile_baseline": True}},
        "task": {"label": task.label, "name": task.name, "level": task.level},
    })
    name = task.label

    def child(parent, source, operator, description, status, speedup=None, message=""):
        program = db.add_program(run, source, parent_id=parent.id if parent else None, operator=operator,
                                 generation=parent.generation + 1 if parent else 0,
                                 metadata={"description": description})
        db.add_evaluation(program, timed_result(name, status, speedup, message))
        return program

    seed = child(None, seed_source, "seed", "the task's seed kernel", Status.ok, 1.0)
    child(seed, variant(seed_source, block=16), "params", "BLOCK_SIZE 1024 -> 16", Status.ok, 0.4)
    wide = child(seed, variant(seed_source, block=2048), "params", "BLOCK_SIZE 1024 -> 2048", Status.ok, 1.25)
    child(wide, variant(seed_source, block=2048).replace("tl.maximum(x, 0.0)", "x"), "diff",
          "drop the clamp", Status.incorrect, message="trial 0: 2048 of 4096 elements differ")
    best = child(wide, variant(seed_source, block=2048, warps=8), "params", "NUM_WARPS 4 -> 8", Status.ok, 1.6)
    db.add_program(run, wide.source, parent_id=wide.id, operator="diff", generation=2,
                   metadata={"attempt_error": "the SEARCH block matched nothing"})
    repeat = db.add_program(run, best.source, parent_id=best.id, operator="params", generation=3,
                            metadata={"description": "NUM_WARPS 8 -> 8", "reused_from": best.id})
    db.add_evaluation(repeat, db.evaluations(best)[-1].result)
    child(best, variant(seed_source, block=8192, warps=8), "params", "BLOCK_SIZE 2048 -> 8192", Status.compile_error,
          message="out of resources: shared memory")
    db.set_run_status(run, "finished")
    return db.get_run(run.id)


# task -> its best kernel's speedup over eager (None: no correct kernel). Over torch.compile each is 4/5 of it:
# 2.0 (exactly 2), 1.2, -, 0.4, 0.8.
LEADERBOARD_SPEEDUPS = {
    "level1/1_ReLU": 2.5,
    "level1/3_Sigmoid": 1.5,  # exactly 1.5x: not counted in fast_1.5
    "level1/4_Tanh": None,
    "level2/1_Linear_ReLU": 0.5,
    "level2/2_Linear_Sigmoid_Sum": 1.0,  # exactly 1x: not counted in fast_1
}


def timed_leaderboard(db: Archive, name: str = "timed") -> Leaderboard:
    """A finished leaderboard of five shipped tasks with LEADERBOARD_SPEEDUPS, one seed program per run."""
    board = db.leaderboards.create(name, str(shipped_suite()), list(LEADERBOARD_SPEEDUPS), config={
        "suite_name": "kernelsmith", "levels": [], "budget_per_task": 1, "backend": "triton-nvidia", "scale": 1.0,
        "compile_baseline": True, "models": [], "trials": 5, "repetitions": 100,
    })
    for label, speedup in LEADERBOARD_SPEEDUPS.items():
        task = shipped_task(label)
        run = db.create_run(label, task.source, config={"backend": "triton-nvidia"})
        program = db.add_program(run, task.seed_source or "", operator="seed")
        status = Status.ok if speedup is not None else Status.incorrect
        db.add_evaluation(program, timed_result(label, status, speedup))
        db.set_run_status(run, "finished")
        board = db.leaderboards.record(board, label, run=run)
    return board
